"""Lesson 02: the exercise checkers, attention pooling, the product data set and the
alignment explorer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from checks import assert_rejected

from course_utils.data import Vocab
from course_utils.exercises import (
    NOT_ATTEMPTED,
    PASSED,
    QUIZZES,
    check_additive_score,
    check_attention_context,
    reference_additive_score,
    reference_attention_context,
)
from course_utils.pooling import (
    PRODUCT_CATEGORIES,
    TextClassifier,
    classify,
    collate_texts,
    highlight_words,
    load_product_categories,
    mean_pooling,
    pooling_loss,
    split_examples,
    word_vocab,
    word_weights,
)
from course_utils.seq2seq import build_attention_model, build_bottleneck_model
from course_utils.widgets import (
    alignment_example,
    alignment_explorer,
    draw_step_alignment,
    step_view,
)

ROOT = Path(__file__).resolve().parents[1]


def _stub(*args, **kwargs):
    raise NotImplementedError


# ----------------------------------------------------------------------------- check_additive_score


def test_additive_score_checker_accepts_the_reference():
    assert check_additive_score(reference_additive_score).status == PASSED


def test_additive_score_checker_says_not_attempted_for_a_stub():
    assert check_additive_score(_stub).status == NOT_ATTEMPTED


def _no_tanh(q, k, W_q, W_k, v):
    return ((q @ W_q.T)[:, None, :] + k @ W_k.T) @ v


def _swapped(q, k, W_q, W_k, v):
    return torch.tanh((q @ W_k.T)[:, None, :] + k @ W_q.T) @ v


def _summed(q, k, W_q, W_k, v):
    return torch.tanh((q @ W_q.T)[:, None, :] + k @ W_k.T).sum(-1)


def _softmaxed(q, k, W_q, W_k, v):
    return torch.softmax(reference_additive_score(q, k, W_q, W_k, v), dim=-1)


def _no_query(q, k, W_q, W_k, v):
    return torch.tanh(k @ W_k.T) @ v


def _unsqueezed(q, k, W_q, W_k, v):
    return reference_additive_score(q, k, W_q, W_k, v)[..., None]


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_no_tanh, "tanh is missing"),
        (_swapped, "swapped"),
        (_summed, "summed the hidden units"),
        (_softmaxed, "weights, not scores"),
        (_no_query, "dropped the query"),
        (_unsqueezed, "squeeze"),
    ],
)
def test_additive_score_checker_names_the_mistake(wrong, words):
    assert_rejected(check_additive_score(wrong), words)


# ----------------------------------------------------------------------------- check_attention_context


def test_attention_context_checker_accepts_the_reference():
    assert check_attention_context(reference_attention_context).status == PASSED


def test_attention_context_checker_says_not_attempted_for_a_stub():
    assert check_attention_context(_stub).status == NOT_ATTEMPTED


def _batch_dim(scores, values, mask):
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0)
    return (weights[:, :, None] * values).sum(1), weights


def _mask_ignored(scores, values, mask):
    weights = torch.softmax(scores, dim=-1)
    return (weights[:, :, None] * values).sum(1), weights


def _mask_inverted(scores, values, mask):
    weights = torch.softmax(scores.masked_fill(mask, -1e9), dim=-1)
    return (weights[:, :, None] * values).sum(1), weights


def _zeroed_after_softmax(scores, values, mask):
    weights = torch.softmax(scores, dim=-1) * mask
    return (weights[:, :, None] * values).sum(1), weights


def _plain_mean(scores, values, mask):
    _, weights = reference_attention_context(scores, values, mask)
    return values.mean(1), weights


def _unweighted_sum(scores, values, mask):
    _, weights = reference_attention_context(scores, values, mask)
    return values.sum(1), weights


def _swapped_outputs(scores, values, mask):
    context, weights = reference_attention_context(scores, values, mask)
    return weights, context


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_batch_dim, "over the batch"),
        (_mask_ignored, "mask is ignored"),
        (_mask_inverted, "mask is inverted"),
        (_zeroed_after_softmax, "do not sum to 1"),
        (_plain_mean, "plain mean"),
        (_unweighted_sum, "multiply each value by its weight"),
        (_swapped_outputs, "return (context, weights)"),
    ],
)
def test_attention_context_checker_names_the_mistake(wrong, words):
    assert_rejected(check_attention_context(wrong), words)


def test_lesson02_has_a_quiz():
    assert 3 <= len(QUIZZES["02"]) <= 4


# ----------------------------------------------------------------------------- data set


def test_product_categories_script_reproduces_the_file_byte_for_byte():
    spec = importlib.util.spec_from_file_location(
        "make_product_categories", ROOT / "data" / "make_product_categories.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.OUT == PRODUCT_CATEGORIES, "the script writes the one copy the loader reads"
    assert script.to_tsv(script.build()).encode("utf-8") == PRODUCT_CATEGORIES.read_bytes()


def test_product_categories_loads_400_balanced_examples():
    examples, categories = load_product_categories()
    assert categories == ["clothing", "electronics", "garden", "kitchen"]
    assert len(examples) == 400
    assert [sum(label == c for _, label in examples) for c in range(4)] == [100] * 4
    assert len({text for text, _ in examples}) == 400, "descriptions are distinct"


def test_product_categories_missing_file_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_product_categories.py"):
        load_product_categories(tmp_path / "nothing.tsv")


def test_split_examples_is_seeded_and_disjoint():
    examples, _ = load_product_categories()
    train, test = split_examples(examples, n_test=100, seed=0)
    assert (len(train), len(test)) == (300, 100)
    assert not {t for t, _ in train} & {t for t, _ in test}
    assert split_examples(examples, n_test=100, seed=0) == (train, test)


# ----------------------------------------------------------------------------- pooling

TEXTS = [("the red kettle is here", 0), ("a hose", 1), ("ships fast the blue hose today ok", 1)]


@pytest.fixture
def words():
    return word_vocab([t for t, _ in TEXTS])


@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_classifier_shapes_and_weights_are_a_distribution_over_real_words(words, pooling):
    torch.manual_seed(0)
    model = TextClassifier(len(words), 3, embed_dim=8, hidden_dim=6, pooling=pooling)
    ids, lengths, _ = collate_texts(TEXTS, words)
    logits, weights = model(ids, lengths)
    assert logits.shape == (3, 3) and weights.shape == ids.shape
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    padding = torch.arange(ids.shape[1])[None] >= lengths[:, None]
    assert (weights[padding] == 0).all()
    assert (weights[~padding] > 0).all()


@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_classifier_is_invariant_to_padding(words, pooling):
    torch.manual_seed(0)
    model = TextClassifier(len(words), 3, embed_dim=8, hidden_dim=6, pooling=pooling).eval()
    ids, lengths, _ = collate_texts(TEXTS, words)
    alone_ids, alone_lengths, _ = collate_texts(TEXTS[1:2], words)
    logits, weights = model(ids, lengths)
    alone_logits, alone_weights = model(alone_ids, alone_lengths)
    torch.testing.assert_close(logits[1], alone_logits[0])
    torch.testing.assert_close(weights[1, : alone_lengths[0]], alone_weights[0])


def test_mean_pooling_gives_every_real_token_one_over_length():
    states = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    pooled, weights = mean_pooling(states, mask)
    torch.testing.assert_close(weights[0], torch.tensor([0.5, 0.5, 0.0, 0.0]))
    torch.testing.assert_close(pooled[0], states[0, :2].mean(0))
    torch.testing.assert_close(pooled[1], states[1].mean(0))


def test_classifier_rejects_unknown_pooling_and_bad_shapes(words):
    with pytest.raises(ValueError, match="pooling must be one of"):
        TextClassifier(len(words), 3, pooling="max")
    model = TextClassifier(len(words), 3, embed_dim=8, hidden_dim=6)
    with pytest.raises(ValueError, match="expected ids"):
        model(torch.zeros(5, dtype=torch.long), torch.tensor([5]))


def test_attention_pooling_learns_a_keyword_task(words):
    torch.manual_seed(0)
    texts = [("filler " * 6 + key + " filler", label) for key, label in (("red", 0), ("blue", 1))]
    vocab = word_vocab([t for t, _ in texts])
    model = TextClassifier(len(vocab), 2, embed_dim=8, hidden_dim=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    batch = collate_texts(texts, vocab)
    for _ in range(40):
        optimizer.zero_grad()
        pooling_loss(model, batch).backward()
        optimizer.step()
    _, accuracy = classify(model, texts, vocab)
    assert accuracy == 1.0
    text_words, weights, _ = word_weights(model, texts[0][0], vocab)
    assert len(text_words) == len(weights) == 8
    assert text_words[int(weights.argmax())] == "red", "the weight goes to the decisive word"


def test_word_weights_rejects_an_empty_text(words):
    model = TextClassifier(len(words), 3, embed_dim=8, hidden_dim=6)
    with pytest.raises(ValueError, match="empty"):
        word_weights(model, "   ", words)


def test_highlight_words_shades_by_weight_and_escapes_html():
    page = highlight_words(["<b>", "cat"], torch.tensor([0.25, 0.75]))
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert "rgba(255, 140, 0, 0.33)" in page and "rgba(255, 140, 0, 1.00)" in page
    with pytest.raises(ValueError, match="2 words but 1 weights"):
        highlight_words(["a", "b"], [1.0])


# ----------------------------------------------------------------------------- alignment explorer

DIGITS = "0123"
PAIRS = [("0123", "0123"), ("3", "3"), ("012301230123", "012301230123")]


@pytest.fixture(scope="module")
def vocab():
    return Vocab(DIGITS)


@pytest.fixture(scope="module")
def model(vocab):
    torch.manual_seed(0)
    return build_attention_model(
        len(vocab), len(vocab), 8, 8, attention_dim=8, feed_context=False, max_src_len=12
    ).eval()


def test_alignment_case_has_one_row_per_output_step(model, vocab):
    case = alignment_example(model, "0123", vocab, vocab, target="0123")
    assert case["weights"].shape == (len(case["rows"]), 4)
    assert "".join(r for r in case["rows"] if len(r) == 1) == case["output"]
    assert case["rows"][-1] == "<eos>" or len(case["rows"]) == 4 + 10
    torch.testing.assert_close(case["weights"].sum(-1), torch.ones(len(case["rows"])))


def test_alignment_case_refuses_a_model_without_attention(vocab):
    bottleneck = build_bottleneck_model(len(vocab), len(vocab), 8, 8)
    with pytest.raises(ValueError, match="no attention"):
        alignment_example(bottleneck, "012", vocab, vocab)


def test_step_view_clamps_steps_past_the_output_and_says_so(model, vocab):
    case = alignment_example(model, "0123", vocab, vocab)
    last = len(case["rows"]) - 1
    assert step_view(case, 0) == (0, step_view(case, 0)[1])
    shown, sentence = step_view(case, 99)
    assert shown == last and "does not exist" in sentence
    assert "does not exist" not in step_view(case, last)[1]


@pytest.mark.parametrize("step", [0, 3, 50])
@pytest.mark.parametrize("source", ["3", "012301230123"])
def test_draw_alignment_draws_at_every_step(model, vocab, source, step):
    figure = draw_step_alignment(alignment_example(model, source, vocab, vocab), step)
    bar_ax, map_ax = figure.axes[:2]
    assert len(bar_ax.patches) == len(source)
    assert map_ax.patches, "the chosen step is outlined"


@pytest.fixture
def explorer(model, vocab):
    return alignment_explorer(model, PAIRS, vocab, vocab)


def test_alignment_explorer_controls_change_the_output(explorer, shown):
    first_view, first_message = explorer.view.value, explorer.message.value
    plots = {shown(explorer.out)}
    explorer.example.value = 2
    assert explorer.view.value != first_view and "012301230123" in explorer.view.value
    plots.add(shown(explorer.out))
    explorer.step.value = 5
    assert explorer.message.value != first_message and "step 5" in explorer.message.value
    plots.add(shown(explorer.out))
    explorer.own.value = "3210"
    assert "3210" in explorer.view.value and "target" not in explorer.view.value
    plots.add(shown(explorer.out))
    assert len(plots) == 4  # every change replaced the plot


def test_alignment_explorer_works_at_the_slider_extremes(explorer):
    explorer.example.value = explorer.example.max
    explorer.step.value = explorer.step.max
    assert "does not exist" in explorer.message.value
    explorer.example.value = explorer.example.min
    explorer.step.value = explorer.step.min
    assert "output step 0" in explorer.message.value
    assert "⚠️" not in explorer.view.value


@pytest.mark.parametrize("bad, words", [("01x", "not in the vocabulary"), ("0" * 13, "at most 12")])
def test_alignment_explorer_shows_bad_input_as_a_message(explorer, bad, words, shown):
    explorer.own.value = bad
    assert "⚠️" in explorer.view.value and words in explorer.view.value
    assert explorer.message.value == ""
    assert explorer.out.outputs == (), "no stale plot beside the message"
    explorer.own.value = ""
    assert "⚠️" not in explorer.view.value, "clearing the box goes back to the sliders"
    shown(explorer.out)


def test_alignment_explorer_refuses_an_empty_example_list(model, vocab):
    with pytest.raises(ValueError, match="no examples"):
        alignment_explorer(model, [], vocab, vocab)


def test_alignment_explorer_marks_wrong_missing_and_extra_symbols():
    from course_utils.widgets.alignment import _case_html

    wrong = _case_html({"source": "123", "target": "123", "output": "1x"})
    assert 'title="expected 2"' in wrong and 'title="missing"' in wrong and "wrong" in wrong
    extra = _case_html({"source": "12", "target": "12", "output": "123"})
    assert 'title="extra"' in extra
    right = _case_html({"source": "12", "target": "12", "output": "12"})
    assert "right" in right and "title=" not in right
    own = _case_html({"source": "12", "target": None, "output": "1<2"})
    assert "1&lt;2" in own and "title=" not in own
