"""Attention: masks, scaled dot-product attention, additive (Bahdanau) and Luong attention.

Conventions for the whole course:
- a mask is boolean and **True means "may attend"** (as in
  ``torch.nn.functional.scaled_dot_product_attention``), broadcastable to the scores;
- a query whose keys are all masked gets zero weights and a zero output, never NaN;
- every attention returns ``(output, weights)`` so that lessons can plot the weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# ----------------------------------------------------------------------------- masks


def causal_mask(n: int, device=None) -> torch.Tensor:
    """``(n, n)`` boolean mask, True on and below the diagonal: position i may see j <= i."""
    if n < 1:
        raise ValueError(f"a causal mask needs n >= 1, got {n}")
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B, max_len)`` boolean mask, True at the first ``lengths[b]`` positions of row b."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}")
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else max_len
    if longest > max_len:
        raise ValueError(f"a length of {longest} does not fit in max_len={max_len}")
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _check_mask(mask: torch.Tensor, scores_shape: torch.Size) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be boolean (True = may attend), got {mask.dtype}; a float mask would be "
            "added to the scores, which is a different convention"
        )
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores_shape)} (..., L_query, L_key)"
        )


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last dim where ``mask`` is True; masked keys get exactly 0.

    A row with no allowed key gets all-zero weights (not NaN), with finite gradients: masked
    scores are replaced by the dtype's most negative finite value rather than ``-inf``.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    _check_mask(mask, scores.shape)
    very_negative = torch.finfo(scores.dtype).min
    weights = torch.softmax(scores.masked_fill(~mask, very_negative), dim=-1)
    return weights * mask  # zero the masked keys; a fully masked row becomes all zeros


# ----------------------------------------------------------------------------- scaled dot product


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ · scale) v, with ``scale = 1/sqrt(d_k)`` by default.

    Shapes: q ``(..., L_q, d_k)``, k ``(..., L_k, d_k)``, v ``(..., L_k, d_v)``; any leading
    batch/head dims that broadcast. Returns out ``(..., L_q, d_v)`` and the weights
    ``(..., L_q, L_k)`` (before dropout). Like PyTorch's function, dropout is applied whenever
    ``dropout_p > 0``: pass 0 at evaluation time.
    """
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            f"q, k, v need at least 2 dims (L, d), got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dim d_k: q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys (dim -2): k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., L_q, L_k)
    weights = masked_softmax(scores, mask)
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights  # (..., L_q, d_v), (..., L_q, L_k)


# ----------------------------------------------------------------------------- seq2seq attention


def _as_queries(query: torch.Tensor, keys: torch.Tensor, query_dim: int, key_dim: int):
    """Accept one query per row ``(B, D_q)`` or many ``(B, L_q, D_q)``; check the sizes."""
    if keys.dim() != 3 or keys.shape[-1] != key_dim:
        raise ValueError(f"keys must be (B, L_k, {key_dim}), got {tuple(keys.shape)}")
    single = query.dim() == 2
    q = query[:, None, :] if single else query  # (B, L_q, D_q)
    if q.dim() != 3 or q.shape[-1] != query_dim or q.shape[0] != keys.shape[0]:
        raise ValueError(
            f"query must be (B, {query_dim}) or (B, L_q, {query_dim}) with the keys' batch size; "
            f"got query {tuple(query.shape)} and keys {tuple(keys.shape)}"
        )
    return q, single


def _as_score_mask(mask: torch.Tensor | None, keys: torch.Tensor) -> torch.Tensor | None:
    """A ``(B, L_k)`` padding mask becomes ``(B, 1, L_k)``; other masks pass through."""
    if mask is not None and mask.dim() == 2 and tuple(mask.shape) == tuple(keys.shape[:2]):
        return mask[:, None, :]
    return mask


def _attend(scores, values, mask, single):
    if values.dim() != 3 or values.shape[:2] != scores.shape[:1] + scores.shape[-1:]:
        raise ValueError(
            f"values must be (B, L_k, D_v) matching the keys, got {tuple(values.shape)} for "
            f"scores {tuple(scores.shape)}"
        )
    weights = masked_softmax(scores, mask)  # (B, L_q, L_k)
    context = weights @ values  # (B, L_q, D_v)
    if single:
        return context[:, 0], weights[:, 0]  # (B, D_v), (B, L_k)
    return context, weights


class AdditiveAttention(nn.Module):
    """Bahdanau et al. (2015): score(q, k) = vᵀ tanh(W_q q + W_k k).

    ``forward(query (B, D_q) or (B, L_q, D_q), keys (B, L_k, D_k), values (B, L_k, D_v),
    mask=None) -> (context, weights)``; a ``(B, L_k)`` mask is a padding mask.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int):
        super().__init__()
        self.query_dim, self.key_dim = query_dim, key_dim
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, L_q, L_k)`` for queries ``(B, L_q, D_q)`` and keys ``(B, L_k, D_k)``."""
        hidden = torch.tanh(self.W_q(query)[:, :, None, :] + self.W_k(keys)[:, None, :, :])
        return self.v(hidden).squeeze(-1)  # (B, L_q, L_k)

    def forward(self, query, keys, values, mask=None):
        q, single = _as_queries(query, keys, self.query_dim, self.key_dim)
        return _attend(self.score(q, keys), values, _as_score_mask(mask, keys), single)


LUONG_SCORES = ("dot", "general", "concat")


class LuongAttention(nn.Module):
    """Luong et al. (2015) global attention with one of three scores:

    - ``dot``: qᵀk (needs ``query_dim == key_dim``; no parameters);
    - ``general``: qᵀ W k;
    - ``concat``: vᵀ tanh(W [q; k]).

    Same ``forward`` as :class:`AdditiveAttention`.
    """

    def __init__(
        self, query_dim: int, key_dim: int, score: str = "general", hidden_dim: int | None = None
    ):
        super().__init__()
        if score not in LUONG_SCORES:
            raise ValueError(f"score must be one of {LUONG_SCORES}, got {score!r}")
        if score == "dot" and query_dim != key_dim:
            raise ValueError(
                f"the dot score needs equal sizes, got query_dim={query_dim} and "
                f"key_dim={key_dim}: use score='general', which learns a W to bridge them"
            )
        self.query_dim, self.key_dim, self.score_name = query_dim, key_dim, score
        if score == "general":
            self.W = nn.Linear(key_dim, query_dim, bias=False)
        elif score == "concat":
            hidden_dim = hidden_dim or query_dim
            self.W = nn.Linear(query_dim + key_dim, hidden_dim, bias=False)
            self.v = nn.Linear(hidden_dim, 1, bias=False)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, L_q, L_k)`` for queries ``(B, L_q, D_q)`` and keys ``(B, L_k, D_k)``."""
        if self.score_name == "dot":
            return query @ keys.transpose(1, 2)
        if self.score_name == "general":
            return query @ self.W(keys).transpose(1, 2)
        pairs = torch.cat(  # (B, L_q, L_k, D_q + D_k)
            [
                query[:, :, None, :].expand(-1, -1, keys.shape[1], -1),
                keys[:, None, :, :].expand(-1, query.shape[1], -1, -1),
            ],
            dim=-1,
        )
        return self.v(torch.tanh(self.W(pairs))).squeeze(-1)

    def forward(self, query, keys, values, mask=None):
        q, single = _as_queries(query, keys, self.query_dim, self.key_dim)
        return _attend(self.score(q, keys), values, _as_score_mask(mask, keys), single)


class LocalAttention(LuongAttention):
    """Luong et al. (2015) local attention: attend only within ``window`` of a centre p_t.

    - ``mode="monotonic"`` (local-m): p_t = t, the query's own position (``positions``,
      default 0, 1, ..., L_q - 1);
    - ``mode="predictive"`` (local-p): p_t = S · sigmoid(v_pᵀ tanh(W_p q)) is learned, and the
      scores get a Gaussian bonus -(s - p_t)² / (2σ²) with σ = window / 2.

    Keys outside ``|s - round(p_t)| <= window`` are masked (for local-p, ``round(p_t)`` is
    clipped to the last source position). Unlike the paper, local-p weights are
    renormalised, so every row sums to 1 like the global ones. ``forward`` takes an extra
    ``positions`` (an int, ``(B,)`` or ``(B, L_q)``); ``self.last_centres`` keeps p_t.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        score: str = "general",
        window: int = 3,
        mode: str = "predictive",
        hidden_dim: int | None = None,
    ):
        super().__init__(query_dim, key_dim, score, hidden_dim)
        if mode not in ("monotonic", "predictive"):
            raise ValueError(f"mode must be 'monotonic' or 'predictive', got {mode!r}")
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.window, self.mode = window, mode
        if mode == "predictive":
            self.W_p = nn.Linear(query_dim, hidden_dim or query_dim, bias=False)
            self.v_p = nn.Linear(hidden_dim or query_dim, 1, bias=False)
        self.last_centres: torch.Tensor | None = None

    def centres(self, q: torch.Tensor, lengths: torch.Tensor, positions=None) -> torch.Tensor:
        """p_t for queries ``(B, L_q, D_q)``: ``(B, L_q)`` floats."""
        batch, n_queries = q.shape[:2]
        if self.mode == "predictive":
            return lengths[:, None].to(q.dtype) * torch.sigmoid(
                self.v_p(torch.tanh(self.W_p(q))).squeeze(-1)
            )
        if positions is None:
            positions = torch.arange(n_queries, device=q.device)
        positions = torch.as_tensor(positions, device=q.device, dtype=q.dtype)
        if positions.dim() == 1 and positions.shape[0] == batch and n_queries == 1:
            positions = positions[:, None]
        return positions.expand(batch, n_queries)

    def forward(self, query, keys, values, mask=None, positions=None):
        q, single = _as_queries(query, keys, self.query_dim, self.key_dim)
        score_mask = _as_score_mask(mask, keys)
        lengths = (
            score_mask.any(dim=-2).sum(-1)
            if score_mask is not None and score_mask.dim() == 3
            else torch.full((keys.shape[0],), keys.shape[1], device=keys.device)
        )
        centres = self.centres(q, lengths, positions)  # (B, L_q)
        self.last_centres = centres.detach()
        source = torch.arange(keys.shape[1], device=keys.device, dtype=q.dtype)  # (L_k,)
        distance = source[None, None, :] - centres[:, :, None]  # (B, L_q, L_k)
        # the window is centred on the nearest position (for local-p, a real source position),
        # so even window=0 keeps one key
        centre_index = centres.round()
        if self.mode == "predictive":
            last = (lengths - 1).clamp_min(0).to(q.dtype)[:, None]  # (B, 1)
            centre_index = torch.minimum(centre_index, last)
        in_window = (source[None, None, :] - centre_index[:, :, None]).abs() <= self.window
        scores = self.score(q, keys)
        if self.mode == "predictive":
            sigma = max(self.window / 2, 0.5)
            scores = scores - distance**2 / (2 * sigma**2)
        window_mask = in_window if score_mask is None else in_window & score_mask
        return _attend(scores, values, window_mask, single)


# ----------------------------------------------------------------------------- multi-head


class MultiHeadAttention(nn.Module):
    """Vaswani et al. (2017): ``num_heads`` scaled dot-product attentions side by side.

    ``forward(query (B, L_q, d_model), key (B, L_k, d_model), value (B, L_k, d_model),
    mask=None) -> (out (B, L_q, d_model), weights (B, H, L_q, L_k))``. ``mask`` is boolean,
    True = may attend: a ``(B, L_k)`` padding mask, or anything that broadcasts to
    ``(B, H, L_q, L_k)`` (e.g. a ``(L_q, L_k)`` causal mask). Dropout acts on the weights
    in training mode; the returned weights are before dropout.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if num_heads < 1 or d_model % num_heads != 0:
            raise ValueError(
                f"num_heads={num_heads} must divide d_model={d_model}: each head gets "
                f"d_model / num_heads features"
            )
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.dropout = dropout
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, d_model) -> (B, H, L, d_head)``."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.d_head).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, L, d_head) -> (B, L, d_model)``."""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.d_model)

    def forward(self, query, key, value, mask=None):
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.dim() != 3 or x.shape[-1] != self.d_model:
                raise ValueError(f"{name} must be (B, L, {self.d_model}), got {tuple(x.shape)}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"query, key and value must share the batch size, and key and value the length: "
                f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
            )
        if mask is not None and mask.dim() == 2 and tuple(mask.shape) == tuple(key.shape[:2]):
            mask = mask[:, None, None, :]  # padding mask (B, L_k) -> (B, 1, 1, L_k)
        q = self.split_heads(self.W_q(query))  # (B, H, L_q, d_head)
        k = self.split_heads(self.W_k(key))  # (B, H, L_k, d_head)
        v = self.split_heads(self.W_v(value))  # (B, H, L_k, d_head)
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        return self.W_o(self.merge_heads(out)), weights  # (B, L_q, d_model), (B, H, L_q, L_k)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of PyTorch's ``nn.MultiheadAttention`` with the same weights.

        PyTorch's boolean masks mean the opposite (True = *blocked*): pass ``~attn_mask`` and
        ``~key_padding_mask`` to this module to get the same result.
        """
        if not mha._qkv_same_embed_dim:
            raise ValueError("only nn.MultiheadAttention with kdim = vdim = embed_dim is supported")
        ours = cls(mha.embed_dim, mha.num_heads, mha.dropout, bias=mha.in_proj_bias is not None)
        w_q, w_k, w_v = mha.in_proj_weight.detach().chunk(3)
        with torch.no_grad():
            for linear, weight in zip((ours.W_q, ours.W_k, ours.W_v), (w_q, w_k, w_v)):
                linear.weight.copy_(weight)
            ours.W_o.weight.copy_(mha.out_proj.weight)
            if mha.in_proj_bias is not None:
                for linear, b in zip((ours.W_q, ours.W_k, ours.W_v), mha.in_proj_bias.chunk(3)):
                    linear.bias.copy_(b)
                ours.W_o.bias.copy_(mha.out_proj.bias)
        return ours.to(mha.in_proj_weight.device)
