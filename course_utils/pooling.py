"""Attention pooling for classification (Yang et al. 2016; Lin et al. 2017).

A bidirectional GRU reads a text; its states are pooled into one vector, which a linear layer
classifies. Mean pooling gives every real token the weight 1/length. Attention pooling learns
the weights: a learned query vector u scores every state with the additive score of Bahdanau
et al., vᵀ tanh(W_q u + W_k h_j), and a masked softmax turns the scores into weights, so a few
decisive words can outweigh many neutral ones. Both return ``(logits, weights)``.

Also here: the course's small labelled text set, ``course_utils/data_files/product_categories.tsv``
(shipped inside the package, written for the course by ``data/make_product_categories.py``), its
loader and batching.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from .attention import AdditiveAttention, masked_softmax, padding_mask
from .data import Vocab, pad_sequences, split_dataset
from .seq2seq import Encoder
from .training import evaluating

# Inside the package, so an installed wheel finds it from any working directory.
DATA_DIR = Path(__file__).resolve().parent / "data_files"
PRODUCT_CATEGORIES = DATA_DIR / "product_categories.tsv"
POOLINGS = ("attention", "mean")

Example = tuple[str, int]


# ----------------------------------------------------------------------------- data


def load_product_categories(
    path: str | Path = PRODUCT_CATEGORIES,
) -> tuple[list[Example], list[str]]:
    """Rows of the product-description set as ``(text, label id)``, and the category names.

    Category ids follow the sorted category names, so they do not depend on the row order.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `python data/make_product_categories.py` (in the course "
            f"repository) to write {PRODUCT_CATEGORIES.name} into {DATA_DIR}"
        )
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or set(rows[0]) != {"text", "category"}:
        raise ValueError(f"{path} must be a TSV with the columns 'text' and 'category'")
    categories = sorted({row["category"] for row in rows})
    index = {name: i for i, name in enumerate(categories)}
    return [(row["text"], index[row["category"]]) for row in rows], categories


def tokenize(text: str) -> list[str]:
    """Lower-case words split on white space (the data set has no punctuation)."""
    return text.lower().split()


def word_vocab(texts: Sequence[str]) -> Vocab:
    """A word-level :class:`Vocab` of every word in ``texts``, sorted (deterministic)."""
    return Vocab(sorted({word for text in texts for word in tokenize(text)}))


def collate_texts(examples: Sequence[Example], vocab: Vocab):
    """``(ids (B, T) long, lengths (B,), labels (B,))`` for ``(text, label)`` examples."""
    ids, lengths = pad_sequences([vocab.encode(tokenize(t)) for t, _ in examples], vocab.pad_id)
    labels = torch.tensor([label for _, label in examples], dtype=torch.long)
    return ids, lengths, labels


def make_text_loader(
    examples: Sequence[Example], vocab: Vocab, batch_size: int = 32, shuffle: bool = True, seed=0
) -> DataLoader:
    """A seeded DataLoader of :func:`collate_texts` batches."""
    return DataLoader(
        list(examples),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=lambda batch: collate_texts(batch, vocab),
    )


def split_examples(examples: Sequence[Example], n_test: int, seed: int = 0):
    """``(train, test)`` with ``n_test`` examples held out, by ``data.split_dataset``."""
    if not 0 <= n_test <= len(examples):
        raise ValueError(f"n_test={n_test} must lie in [0, {len(examples)}]")
    test_fraction = n_test / len(examples) if examples else 0.0
    train, _, test = split_dataset(examples, (1 - test_fraction, 0.0, test_fraction), seed)
    return train, test


# ----------------------------------------------------------------------------- model


class AttentionPooling(nn.Module):
    """Pool states ``(B, T, D)`` into ``(B, D)`` with weights from a learned query vector u:

    e_j = vᵀ tanh(W_q u + W_k h_j), α = masked softmax(e), pooled = Σ_j α_j h_j.
    """

    def __init__(self, state_dim: int, hidden_dim: int = 32):
        super().__init__()
        self.query = nn.Parameter(torch.randn(hidden_dim) / hidden_dim**0.5)  # u: (A,)
        self.attention = AdditiveAttention(hidden_dim, state_dim, hidden_dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor):
        query = self.query.expand(states.shape[0], -1)  # (B, A): the same u for every text
        return self.attention(query, states, states, mask)  # (B, D), (B, T)


def mean_pooling(states: torch.Tensor, mask: torch.Tensor):
    """The average of the real tokens' states, with its weights 1/length: ``(B, D), (B, T)``."""
    weights = masked_softmax(torch.zeros(mask.shape, device=states.device), mask)  # (B, T)
    return (weights[:, :, None] * states).sum(1), weights


class TextClassifier(nn.Module):
    """Embedding -> BiGRU -> pooling (``"attention"`` or ``"mean"``) -> linear.

    ``forward(ids (B, T), lengths (B,)) -> (logits (B, C), weights (B, T))``: the weights are
    zero at padding and sum to 1 over each text's real tokens.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 32,
        hidden_dim: int = 32,
        pooling: str = "attention",
        attention_dim: int = 32,
        pad_id: int = 0,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.encoder = Encoder(vocab_size, embed_dim, hidden_dim, bidirectional=True, pad_id=pad_id)
        self.pool = (
            AttentionPooling(2 * hidden_dim, attention_dim) if pooling == "attention" else None
        )
        self.out = nn.Linear(2 * hidden_dim, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor):
        if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
            raise ValueError(
                f"expected ids (B, T) and lengths (B,), got {tuple(ids.shape)} and "
                f"{tuple(lengths.shape)}"
            )
        states, _ = self.encoder(ids, lengths)  # (B, T, 2H), zero at padding
        mask = padding_mask(lengths.to(ids.device), ids.shape[1])  # (B, T), True at words
        if self.pool is not None:
            pooled, weights = self.pool(states, mask)
        else:
            pooled, weights = mean_pooling(states, mask)
        return self.out(pooled), weights  # (B, C), (B, T)


def pooling_loss(model: nn.Module, batch) -> torch.Tensor:
    """Cross-entropy of a :class:`TextClassifier` on an ``(ids, lengths, labels)`` batch."""
    ids, lengths, labels = batch
    logits, _ = model(ids, lengths)
    return F.cross_entropy(logits, labels)


@torch.no_grad()
def classify(model: nn.Module, examples: Sequence[Example], vocab: Vocab):
    """Predicted labels ``(N,)`` and accuracy of ``model`` on ``(text, label)`` examples."""
    device = next(model.parameters()).device
    ids, lengths, labels = collate_texts(examples, vocab)
    with evaluating(model):
        logits, _ = model(ids.to(device), lengths.to(device))
    predictions = logits.argmax(-1).cpu()
    return predictions, float((predictions == labels).float().mean())


@torch.no_grad()
def word_weights(model: nn.Module, text: str, vocab: Vocab) -> tuple[list[str], torch.Tensor, int]:
    """The words of ``text``, the model's pooling weight on each ``(T,)``, and its prediction."""
    words = tokenize(text)
    if not words:
        raise ValueError("the text is empty: type a few words")
    device = next(model.parameters()).device
    ids = torch.tensor([vocab.encode(words)], device=device)
    with evaluating(model):
        logits, weights = model(ids, torch.tensor([len(words)], device=device))
    return words, weights[0].cpu(), int(logits.argmax(-1))


def highlight_words(words: Sequence[str], weights, colour: str = "255, 140, 0") -> str:
    """HTML: each word on a background whose opacity is its weight / the largest weight."""
    weights = torch.as_tensor(weights, dtype=torch.float32)
    if len(words) != len(weights):
        raise ValueError(f"{len(words)} words but {len(weights)} weights")
    top = float(weights.max()) if len(weights) else 1.0
    spans = [
        f'<span style="background:rgba({colour}, {float(w) / top if top > 0 else 0:.2f});'
        f'padding:1px 2px;border-radius:3px" title="{float(w):.3f}">{html.escape(word)}</span>'
        for word, w in zip(words, weights)
    ]
    return '<div style="line-height:1.9;font-family:sans-serif">' + " ".join(spans) + "</div>"
