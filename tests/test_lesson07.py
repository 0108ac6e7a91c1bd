"""Lesson 07: the arithmetic corpus, the three checkers, the generation explorers, the bench."""

from __future__ import annotations

import math

import ipywidgets as widgets
import pytest
import torch
from checks import assert_rejected

from course_utils.attention import MultiHeadAttention, causal_mask
from course_utils.exercises import (
    QUIZZES,
    SOLUTIONS,
    check_causal_mask_with_offset,
    check_kv_cache_step,
    check_top_k_filter,
    reference_causal_mask_with_offset,
    reference_kv_cache_step,
    reference_top_k_filter,
)
from course_utils.tasks import (
    ARITHMETIC_SYMBOLS,
    IGNORE_INDEX,
    arithmetic_answer,
    arithmetic_batch,
    arithmetic_loader,
    arithmetic_vocab,
    carry_free_answer,
    make_arithmetic,
    parse_problem,
    split_problems,
)
from course_utils.transformer import GPT, GPTConfig
from course_utils.widgets import (
    attention_map,
    causal_explorer,
    encode_prompt,
    generation_explorer,
    next_token_probabilities,
    plot_next_token,
    plot_visibility,
    sample_continuations,
    token_labels,
    visibility_sentence,
)

CHECKERS = {
    "causal_mask_with_offset": check_causal_mask_with_offset,
    "kv_cache_step": check_kv_cache_step,
    "top_k_filter": check_top_k_filter,
}


@pytest.fixture(scope="module")
def vocab():
    return arithmetic_vocab()


@pytest.fixture(scope="module")
def model(vocab):
    torch.manual_seed(0)
    return GPT(GPTConfig(len(vocab), block_size=16, d_model=16, num_heads=2, num_layers=2)).eval()


# ----------------------------------------------------------------------------- the corpus


def test_the_vocabulary_has_the_digits_plus_equals_and_the_specials(vocab):
    assert len(vocab) == 16
    assert vocab.itos[4:] == list(ARITHMETIC_SYMBOLS)
    assert vocab.eos_id == 2


def test_make_arithmetic_gives_every_problem_once_seeded():
    problems = make_arithmetic(2, seed=0)
    assert len(problems) == 10_000
    assert len({p for p, _ in problems}) == 10_000
    assert problems == make_arithmetic(2, seed=0)
    assert problems != make_arithmetic(2, seed=1)
    assert make_arithmetic(2, n=5, seed=0) == make_arithmetic(2, n=5, seed=0)


@pytest.mark.parametrize("digits", [1, 2, 3])
@pytest.mark.parametrize("reverse", [True, False])
def test_every_answer_is_right_and_every_problem_has_the_same_width(digits, reverse):
    problems = make_arithmetic(digits, n=200 if digits > 1 else 100, reverse_answer=reverse)
    for prompt, answer in problems:
        assert len(prompt) == 2 * digits + 2 and len(answer) == digits + 1
        a, b = parse_problem(prompt, digits)
        assert int(answer[::-1] if reverse else answer) == a + b


def test_the_answer_is_written_ones_digit_first():
    assert arithmetic_answer(7, 45, 2) == "250"
    assert arithmetic_answer(7, 45, 2, reverse_answer=False) == "052"
    assert arithmetic_answer(99, 99, 2) == "891"
    assert make_arithmetic(1, n=100, seed=0)[0][0].endswith("=")


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: make_arithmetic(0), "digits must be an int from 1 to 6"),
        (lambda: make_arithmetic(2, n=10_001), "n must be in 1..10000"),
        (lambda: arithmetic_answer(100, 1, 2), "operands must be in 0..99"),
        (lambda: parse_problem("07-45="), "is not a problem like"),
        (lambda: parse_problem("7a+45="), "written in digits"),
        (lambda: parse_problem("7+45=", digits=2), "trained on 2-digit operands"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_split_holds_out_problems_that_training_never_sees():
    problems = make_arithmetic(2, seed=0)
    train, held_out = split_problems(problems, 1000)
    assert len(train) == 9000 and len(held_out) == 1000
    assert not {p for p, _ in train} & {p for p, _ in held_out}
    with pytest.raises(ValueError, match="repeat"):
        split_problems(problems[:10] + problems[:1], 2)
    with pytest.raises(ValueError, match="n_test"):
        split_problems(problems[:10], 10)


def test_the_carry_free_baseline_forgets_every_carry():
    assert carry_free_answer("07+45=") == "240"  # 0+4 = 4, 7+5 = 12 -> 2: "042", reversed
    assert carry_free_answer("07+45=", reverse_answer=False) == "042"
    assert carry_free_answer("12+34=") == arithmetic_answer(12, 34, 2)  # no carry: right


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("07+45", "is not a problem like"),  # it cut the last digit: "40"
        ("7+45=", "same number of digits"),  # it zipped 7 with 4 and dropped the 5
        ("07-45=", "not a problem like"),
        ("0a+45=", "written in digits"),
    ],
)
def test_the_carry_free_baseline_refuses_a_prompt_it_cannot_read(prompt, words):
    with pytest.raises(ValueError, match=words):
        carry_free_answer(prompt)


def test_arithmetic_batch_shifts_by_one_and_keeps_the_loss_on_the_answer(vocab):
    problems = [("07+45=", "250"), ("99+99=", "891")]
    inputs, targets = arithmetic_batch(problems, vocab)
    assert inputs.shape == targets.shape == (2, 9)
    full = torch.tensor([vocab.encode(p + a, add_eos=True) for p, a in problems])
    assert torch.equal(inputs, full[:, :-1])
    assert (targets[:, :5] == IGNORE_INDEX).all()
    assert torch.equal(targets[:, 5:], full[:, 6:])  # position 5 ('=') predicts answer[0]
    _, all_targets = arithmetic_batch(problems, vocab, answer_only=False)
    assert torch.equal(all_targets, full[:, 1:])
    with pytest.raises(ValueError, match="different lengths"):
        arithmetic_batch([("7+45=", "25"), ("07+45=", "250")], vocab)


def test_arithmetic_loader_is_seeded(vocab):
    problems = make_arithmetic(2, n=256, seed=0)
    first = next(iter(arithmetic_loader(problems, vocab, batch_size=32, seed=3)))
    again = next(iter(arithmetic_loader(problems, vocab, batch_size=32, seed=3)))
    other = next(iter(arithmetic_loader(problems, vocab, batch_size=32, seed=4)))
    assert first[0].shape == (32, 9)
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])


# ----------------------------------------------------------------------------- checkers: common


def test_checkers_leave_the_learners_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for name, checker in CHECKERS.items():
        checker(SOLUTIONS[name])
    assert torch.equal(torch.rand(3), expected)


def test_the_quiz_has_three_or_four_questions():
    assert 3 <= len(QUIZZES["07"]) <= 4


# ----------------------------------------------------------------------------- references


def test_reference_mask_with_offset_is_the_models_mask():
    for n_q, n_k in [(1, 1), (3, 3), (1, 6), (4, 9)]:
        assert torch.equal(
            reference_causal_mask_with_offset(n_q, n_k), causal_mask(n_q, offset=n_k - n_q)
        )
    assert torch.equal(reference_causal_mask_with_offset(5, 5), causal_mask(5))


def test_reference_cache_step_equals_multi_head_attention_with_a_kv_cache():
    from course_utils.attention import KVCache

    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 6, 16)
    cache = KVCache()
    with torch.no_grad():
        mha(x[:, :5], x[:, :5], x[:, :5], attn_mask=causal_mask(5), cache=cache)
        expected, _ = mha(x[:, 5:], x[:, 5:], x[:, 5:], cache=cache)
        token = x[:, 5:]
        q, k, v = (mha.split_heads(w(token)) for w in (mha.W_q, mha.W_k, mha.W_v))
        k_old, v_old = cache.k[..., :5, :], cache.v[..., :5, :]
        out, k_all, v_all = reference_kv_cache_step(q, k, v, k_old, v_old)
    assert torch.allclose(mha.W_o(mha.merge_heads(out)), expected, atol=1e-6)
    assert torch.equal(k_all, cache.k) and torch.equal(v_all, cache.v)


def test_reference_top_k_filter_is_what_sample_next_samples_from():
    from course_utils.transformer import sample_next

    torch.manual_seed(0)
    logits = torch.randn(4, 16)
    filtered = reference_top_k_filter(logits, 3)
    assert (torch.isfinite(filtered).sum(-1) == 3).all()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    ours = torch.multinomial(torch.softmax(filtered, -1), 1, generator=g1)
    assert torch.equal(ours, sample_next(logits, 1.0, 3, generator=g2))


# ----------------------------------------------------------------------------- mistakes


def _ones(n_q, n_k):
    return torch.ones(n_q, n_k, dtype=torch.bool)


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (lambda q, k: _ones(q, k).tril(), "Shift the diagonal"),
        (lambda q, k: _ones(q, k).triu(k - q), "see the future keys"),
        (lambda q, k: ~_ones(q, k).tril(k - q), "see the future keys"),
        (lambda q, k: _ones(q, k).tril(k - q - 1), "blocked from its own key"),
        (lambda q, k: _ones(q, k), "everything is True"),
        (lambda q, k: _ones(k, q).tril(), "rows are queries and columns keys"),
        (lambda q, k: _ones(q, k).tril(k - q).float(), "return booleans"),
        (lambda q, k: [[True] * k] * q, "return a torch.Tensor, got list"),
    ],
    ids=["no-offset", "triu", "inverted", "no-diagonal", "all-true", "transposed", "float", "list"],
)
def test_mask_with_offset_names_the_typical_mistake(wrong, words):
    assert_rejected(check_causal_mask_with_offset(wrong), words)


def _cache_step(dim=-2, new_first=False, scale=True, softmax_dim=-1, use="all", grow=True):
    """A configurable (mostly wrong) learner's cache step."""

    def step(q, k_new, v_new, k_cache, v_cache):
        pair_k = [k_new, k_cache] if new_first else [k_cache, k_new]
        pair_v = [v_new, v_cache] if new_first else [v_cache, v_new]
        k_all, v_all = torch.cat(pair_k, dim=dim), torch.cat(pair_v, dim=dim)
        keys, values = {"all": (k_all, v_all), "old": (k_cache, v_cache), "new": (k_new, v_new)}[
            use
        ]
        scores = q @ keys.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
        out = torch.softmax(scores, dim=softmax_dim) @ values
        return (out, k_all, v_all) if grow else (out, k_cache, v_cache)

    return step


def _returns_cache_cat_on(dim):
    """Attends correctly but returns caches concatenated on the wrong dim."""

    def step(q, k_new, v_new, k_cache, v_cache):
        out, _, _ = reference_kv_cache_step(q, k_new, v_new, k_cache, v_cache)
        return out, torch.cat([k_cache, k_new], dim=dim), torch.cat([v_cache, v_new], dim=dim)

    return step


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (_cache_step(dim=-1), "append the new key/value on the wrong dim"),
        (_cache_step(dim=1), "append the new key/value on the wrong dim"),
        (_returns_cache_cat_on(-1), "appended along the last dim"),
        (_returns_cache_cat_on(1), "appended along the heads dim"),
        (_cache_step(new_first=True), "went to the front of the cache"),
        (_cache_step(scale=False), "without the scale"),
        (_cache_step(softmax_dim=-2), "softmax over the wrong dim"),
        (_cache_step(use="new"), "attended only to itself"),
        (_cache_step(use="old"), "did not attend to its own key"),
        (_cache_step(grow=False), "the old length"),
        (lambda *args: reference_kv_cache_step(*args)[0], "return a triple"),
    ],
    ids=[
        "dim-1",
        "ret-dim-1",
        "ret-heads",
        "heads",
        "front",
        "no-scale",
        "softmax-dim",
        "self-only",
        "no-self",
        "no-grow",
        "one",
    ],
)
def test_kv_cache_step_names_the_typical_mistake(wrong, words):
    assert_rejected(check_kv_cache_step(wrong), words)


def _top_k(k_shift=0, largest=True, fill=float("-inf"), strict=True):
    def top_k_filter(logits, k):
        values = torch.topk(logits, k + k_shift, dim=-1, largest=largest).values[:, -1:]
        if largest:
            drop = logits < values if strict else logits <= values
        else:
            drop = logits > values
        return logits.masked_fill(drop, fill)

    return top_k_filter


def _in_place(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    logits[logits < kth] = float("-inf")
    return logits


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (_top_k(k_shift=1), "you kept 4 tokens for k = 3"),
        (_top_k(largest=False), "the k *smallest* logits"),
        (_top_k(fill=0.0), "set to 0, not -inf"),
        (_top_k(strict=False), "the k-th largest itself must stay"),
        (
            lambda logits, k: torch.softmax(reference_top_k_filter(logits, k), -1),
            "not probabilities",
        ),
        (lambda logits, k: torch.topk(logits, k, dim=-1).values, "only the top-k values"),
        (_in_place, "in place"),
        (lambda logits, k: reference_top_k_filter(logits, k) * 2, "unchanged"),
    ],
    ids=["k+1", "smallest", "zero-fill", "k-1", "probs", "values-only", "in-place", "scaled"],
)
def test_top_k_filter_names_the_typical_mistake(wrong, words):
    assert_rejected(check_top_k_filter(wrong), words)


# ----------------------------------------------------------------------------- explorer logic


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("", "type a prompt first"),
        ("07-45=", "'-' not in the vocabulary"),
        ("1" * 17, "at most 16"),
    ],
)
def test_encode_prompt_explains_what_is_wrong(vocab, prompt, words):
    with pytest.raises(ValueError, match=words):
        encode_prompt(prompt, vocab, block_size=16)
    assert encode_prompt("07+45=", vocab) == vocab.encode("07+45=")


def test_token_labels_show_the_end_token(vocab):
    labels = token_labels(vocab)
    assert len(labels) == 16 and labels[vocab.eos_id] == "⏎" and labels[4] == "0"
    assert all(len(label) == 1 for label in labels)


def test_next_token_probabilities_follow_temperature_and_top_k(model, vocab):
    plain = next_token_probabilities(model, vocab, "07+45=")
    assert plain.shape == (16,) and plain.sum() == pytest.approx(1.0, abs=1e-5)
    greedy = next_token_probabilities(model, vocab, "07+45=", temperature=0)
    assert greedy.max() == 1 and int(greedy.argmax()) == int(plain.argmax())
    top1 = next_token_probabilities(model, vocab, "07+45=", 1.0, top_k=1)
    assert torch.equal(top1, greedy)
    assert torch.allclose(next_token_probabilities(model, vocab, "07+45=", 1.0, top_k=16), plain)
    assert int((next_token_probabilities(model, vocab, "07+45=", 1.0, top_k=3) > 0).sum()) == 3

    def entropy(p):
        return float(-(p[p > 0] * p[p > 0].log()).sum())

    cold, hot = (next_token_probabilities(model, vocab, "07+45=", t) for t in (0.3, 3.0))
    assert entropy(cold) < entropy(plain) < entropy(hot)


@pytest.mark.parametrize("top_k", [0, 17])
def test_next_token_probabilities_refuse_a_top_k_outside_the_vocabulary(model, vocab, top_k):
    with pytest.raises(
        ValueError, match=rf"top_k must be in 1\.\.16 \(the vocabulary size\), got {top_k}"
    ):
        next_token_probabilities(model, vocab, "07+45=", 1.0, top_k=top_k)


def test_samples_are_seeded_and_greedy_samples_agree(model, vocab):
    first = sample_continuations(model, vocab, "07+45=", 1.5, None, n=6, seed=1)
    assert first == sample_continuations(model, vocab, "07+45=", 1.5, None, n=6, seed=1)
    assert len(first) == 6 and len(set(first)) > 1
    greedy = sample_continuations(model, vocab, "07+45=", 0.0, None, n=4)
    assert len(set(greedy)) == 1
    assert sample_continuations(model, vocab, "07+45=", 1.0, 1, n=4) == greedy


def test_plot_next_token_draws_one_bar_per_token(vocab):
    probs = torch.softmax(torch.randn(16), -1)
    ax = plot_next_token(probs, vocab, title="t")
    assert len(ax.patches) == 16 and ax.get_title() == "t"


def test_attention_map_is_causal_and_checks_layer_and_head(model, vocab):
    weights = attention_map(model, vocab, "07+45=25", layer=1, head=1)
    assert weights.shape == (8, 8)
    assert (weights[~causal_mask(8)] == 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(8), atol=1e-5)
    with pytest.raises(ValueError, match="layer must be in 0..1 and head in 0..1"):
        attention_map(model, vocab, "07", layer=2, head=0)


def test_visibility_sentence_lists_the_seen_and_hidden_characters():
    assert "may attend to <code>07+</code> (3 tokens)" in visibility_sentence("07+45=", 2)
    assert "may not see <code>45=</code>" in visibility_sentence("07+45=", 2)
    assert "(1 token)" in visibility_sentence("07+45=", 0)
    assert "sees the whole prompt" in visibility_sentence("07+45=", 5)
    with pytest.raises(ValueError, match="position must be in 0..5"):
        visibility_sentence("07+45=", 6)


def test_plot_visibility_draws_the_mask_or_the_weights_with_the_future_greyed():
    ax = plot_visibility("07+4", position=1)
    assert ax.get_title().startswith("the causal mask")
    outlined = [p for p in ax.patches if not p.get_fill()]
    assert len(outlined) == 1
    ax = plot_visibility("07+4", weights=torch.eye(4))
    greyed = [p for p in ax.patches if p.get_fill()]
    assert len(greyed) == 6  # the 4·3/2 future cells


# ----------------------------------------------------------------------------- explorers


def test_generation_explorer_controls_change_the_output_and_every_extreme_draws(
    model, vocab, shown
):
    box = generation_explorer(
        model, vocab, answer=lambda p: arithmetic_answer(*parse_problem(p, 2), 2)
    )
    assert isinstance(box, widgets.VBox)
    assert box.temperature.style.description_width == "initial"
    first = box.readout.value
    assert "Right answer: <code><b>250</b></code>" in first and "⚠️" not in first
    seen, plots = {first}, {shown(box.out)}
    for temperature in (box.temperature.min, box.temperature.max):
        for top_k in (box.top_k.min, box.top_k.max):
            box.temperature.value, box.top_k.value = temperature, top_k
            assert "⚠️" not in box.readout.value
            seen.add(box.readout.value)
            plots.add(shown(box.out))
    box.temperature.value, box.top_k.value = 0.0, 16
    assert "greedy (temperature 0)" in box.readout.value
    assert box.top_k.disabled and box.seed.disabled and box.again.disabled  # they change nothing
    box.temperature.value, box.top_k.value = 1.0, 1
    assert not box.top_k.disabled and box.seed.disabled and box.again.disabled
    box.top_k.value = 16
    assert not (box.top_k.disabled or box.seed.disabled or box.again.disabled)
    box.temperature.value = 1.0
    before = box.readout.value
    box.again.click()
    assert box.seed.value == 1 and box.readout.value != before
    assert len(seen) >= 4 and len(plots) >= 4


@pytest.mark.parametrize(
    ("prompt", "words"), [("", "type a prompt first"), ("hello", "not in the vocabulary")]
)
def test_generation_explorer_shows_bad_prompts_as_a_message(model, vocab, prompt, words, shown):
    box = generation_explorer(model, vocab)
    box.text.value = prompt
    assert "⚠️" in box.readout.value and words in box.readout.value
    assert box.out.outputs == (), "no stale plot beside the message"
    box.text.value = "1"  # a one-character prompt that is no problem: samples, no right answer
    assert "⚠️" not in box.readout.value and "Right answer" not in box.readout.value
    shown(box.out)


def test_causal_explorer_follows_the_prompt_and_every_view_draws(model, vocab, shown):
    box = causal_explorer(model, vocab, prompt="07+45=250")
    plots = {shown(box.out)}
    assert box.position.max == 8 and box.position.value == 8
    box.position.value = 0
    assert "position 0 (<b>0</b>)" in box.readout.value
    box.text.value = "12+3"
    assert box.position.max == 3
    box.position.value = 3
    box.text.value = "12"
    assert box.position.max == 1 and box.position.value == 1
    plots.add(shown(box.out))
    assert box.layer.disabled and box.head.disabled, "they change nothing in the mask view"
    box.view.value = "attention"
    assert not box.layer.disabled and not box.head.disabled
    for layer in (box.layer.min, box.layer.max):
        for head in (box.head.min, box.head.max):
            box.layer.value, box.head.value = layer, head
            assert "⚠️" not in box.readout.value
            plots.add(shown(box.out))
    assert len(plots) == 6  # the mask, a shorter prompt, and four layer/head maps
    box.text.value = "1"
    assert box.position.max == 0 and "⚠️" not in box.readout.value
    shown(box.out)
    box.text.value = "a"
    assert "⚠️" in box.readout.value
    assert box.out.outputs == (), "no stale plot beside the message"


# ----------------------------------------------------------------------------- make bench


def test_bench_kv_cache_prints_the_table(monkeypatch, capsys):
    import bench_kv_cache

    monkeypatch.setattr(
        "sys.argv", ["bench_kv_cache.py", "--prompt", "4", "--new", "8", "16", "--repeats", "1"]
    )
    assert bench_kv_cache.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["prompt", "new", "uncached", "s", "cached", "s", "speed-up"]
    assert [line.split()[:2] for line in lines[2:]] == [["4", "8"], ["4", "16"]]
    assert all(line.endswith("x") for line in lines[2:])


def test_causal_explorer_disables_a_slider_with_one_value(vocab, shown):
    torch.manual_seed(0)
    one = GPT(GPTConfig(len(vocab), block_size=16, d_model=8, num_heads=1, num_layers=1)).eval()
    box = causal_explorer(one, vocab)
    box.view.value = "attention"
    assert box.layer.disabled and box.head.disabled  # one layer, one head: nothing to pick
    shown(box.out)  # and the single map still draws
