"""data: vocabularies, seeded synthetic tasks, splits and padded batches."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.data import (
    DIGITS,
    LETTERS,
    MONTHS,
    WEEKDAYS,
    Batch,
    Vocab,
    collate_pairs,
    lengths_to_mask,
    make_dates,
    make_loader,
    make_sequence_task,
    pad_sequences,
    split_dataset,
    task_target,
)

FAST = settings(max_examples=30, deadline=None)
ALPHABET = "abc xyz019-"


@pytest.fixture
def vocab():
    return Vocab(ALPHABET)


# ----------------------------------------------------------------------------- Vocab


def test_special_symbols_are_ids_0_to_3(vocab):
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert [vocab.stoi[s] for s in Vocab.SPECIALS] == [0, 1, 2, 3]


def test_vocab_keeps_each_symbol_once_after_the_specials():
    vocab = Vocab("abca")
    assert vocab.itos[4:] == ["a", "b", "c"]
    assert len(vocab) == 7
    assert "a" in vocab and "d" not in vocab


@given(st.text(alphabet=ALPHABET, max_size=30))
@FAST
def test_encode_decode_round_trips(text):
    vocab = Vocab(ALPHABET)
    assert vocab.to_text(vocab.encode(text)) == text
    assert vocab.to_text(vocab.encode(text, add_bos=True, add_eos=True)) == text


def test_encode_adds_bos_and_eos_around_the_ids(vocab):
    ids = vocab.encode("ab", add_bos=True, add_eos=True)
    assert ids == [vocab.bos_id, vocab.stoi["a"], vocab.stoi["b"], vocab.eos_id]


def test_decode_stops_at_eos_and_skips_pad_and_bos(vocab):
    a, b = vocab.stoi["a"], vocab.stoi["b"]
    ids = [vocab.bos_id, a, vocab.pad_id, b, vocab.eos_id, a, a]
    assert vocab.decode(ids) == ["a", "b"]
    assert vocab.to_text(ids) == "ab"


def test_decode_without_stripping_keeps_every_symbol(vocab):
    a = vocab.stoi["a"]
    ids = [vocab.bos_id, a, vocab.eos_id, vocab.pad_id]
    assert vocab.decode(ids, strip_special=False) == ["<bos>", "a", "<eos>", "<pad>"]


def test_decode_accepts_a_tensor_of_ids(vocab):
    ids = torch.tensor(vocab.encode("abc", add_eos=True))
    assert vocab.to_text(ids) == "abc"


def test_unknown_symbols_map_to_unk(vocab):
    ids = vocab.encode("a#b")
    assert ids == [vocab.stoi["a"], vocab.unk_id, vocab.stoi["b"]]


def test_strict_encode_error_lists_the_unknown_symbols_once_in_order(vocab):
    with pytest.raises(ValueError, match=r"symbols \['#', '!'\] are not in the vocabulary"):
        vocab.encode("a#b!#", strict=True)


def test_unknown_lists_missing_symbols_without_repeats(vocab):
    assert vocab.unknown("Q#aQ") == ["Q", "#"]
    assert vocab.unknown("abc") == []


@pytest.mark.parametrize("bad_id", [-1, len(ALPHABET) + 4, 1000])
def test_decode_rejects_ids_outside_the_vocabulary(vocab, bad_id):
    with pytest.raises(ValueError, match=f"id {bad_id} is outside the vocabulary"):
        vocab.decode([vocab.stoi["a"], bad_id])


@given(st.lists(st.text(alphabet="zyxcba321", max_size=8), max_size=6))
@FAST
def test_from_texts_is_sorted_and_independent_of_text_order(texts):
    vocab = Vocab.from_texts(texts)
    symbols = vocab.itos[4:]
    assert symbols == sorted(set("".join(texts)))
    assert Vocab.from_texts(list(reversed(texts))).itos == vocab.itos


def test_repr_names_the_size(vocab):
    assert f"{len(vocab)} symbols" in repr(vocab)


# ----------------------------------------------------------------------------- sequence tasks


@pytest.mark.parametrize(
    ("task", "expected"),
    [("copy", lambda s: s), ("reverse", lambda s: s[::-1]), ("sort", lambda s: "".join(sorted(s)))],
)
def test_sequence_task_targets_are_correct(task, expected):
    pairs = make_sequence_task(task, 200, min_len=2, max_len=9, seed=3)
    assert all(target == expected(source) for source, target in pairs)
    assert task_target(task, "cab") == expected("cab")


def test_sequence_task_sources_are_distinct_and_use_the_alphabet():
    pairs = make_sequence_task("reverse", 300, min_len=1, max_len=6, alphabet="abc", seed=0)
    sources = [s for s, _ in pairs]
    assert len(pairs) == 300
    assert len(set(sources)) == len(sources)
    assert set("".join(sources)) <= set("abc")


def test_sequence_task_lengths_stay_within_bounds_and_every_length_appears():
    pairs = make_sequence_task("copy", 400, min_len=3, max_len=12, seed=1)
    lengths = Counter(len(s) for s, _ in pairs)
    assert set(lengths) == set(range(3, 13))
    # uniform over 10 lengths: 40 expected each; no length is starved
    assert min(lengths.values()) >= 15


def test_sequence_task_same_seed_same_data_different_seed_different_data():
    first = make_sequence_task("sort", 50, seed=5)
    assert make_sequence_task("sort", 50, seed=5) == first
    assert make_sequence_task("sort", 50, seed=6) != first


def test_sequence_task_refuses_more_distinct_sequences_than_exist():
    with pytest.raises(ValueError, match="cannot draw 100 distinct sequences"):
        make_sequence_task("copy", 100, min_len=1, max_len=2, alphabet="ab")


def test_sequence_task_rejects_an_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'rotate'"):
        make_sequence_task("rotate", 10)
    with pytest.raises(ValueError, match="unknown task"):
        task_target("rotate", "abc")


@pytest.mark.parametrize(("min_len", "max_len"), [(0, 5), (6, 5)])
def test_sequence_task_rejects_bad_length_ranges(min_len, max_len):
    with pytest.raises(ValueError, match="min_len <= max_len"):
        make_sequence_task("copy", 10, min_len=min_len, max_len=max_len)


def test_sequence_task_rejects_a_one_symbol_alphabet():
    with pytest.raises(ValueError, match="at least two distinct symbols"):
        make_sequence_task("copy", 2, alphabet="aaa")


# ----------------------------------------------------------------------------- dates

MONTH_BY_NAME = {m.lower(): i for i, m in enumerate(MONTHS, start=1)}
MONTH_BY_NAME.update({m[:3].lower(): i for i, m in enumerate(MONTHS, start=1)})
WEEKDAY_BY_NAME = {d.lower(): i for i, d in enumerate(WEEKDAYS)}
WEEKDAY_BY_NAME.update({d[:3].lower(): i for i, d in enumerate(WEEKDAYS)})


def parse_human_date(source: str) -> dt.date:
    """An independent reading of a source: the date it denotes (asserts it is unambiguous)."""
    if "/" in source:
        a, b, c = (int(x) for x in source.split("/"))
        if len(source.split("/")[0]) == 4:  # year first: year/month/day
            return dt.date(a, b, c)
        return dt.date(c, a, b)  # US order: month/day/year
    if "." in source:
        day, month, year = (int(x) for x in source.split("."))
        return dt.date(year, month, day)
    numbers = [int(x) for x in re.findall(r"\d+", source)]
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", source)]
    years = [x for x in numbers if x >= 1000]
    days = [x for x in numbers if x < 1000]
    months = [MONTH_BY_NAME[w] for w in words if w in MONTH_BY_NAME]
    weekdays = [WEEKDAY_BY_NAME[w] for w in words if w in WEEKDAY_BY_NAME]
    others = [w for w in words if w not in MONTH_BY_NAME and w not in WEEKDAY_BY_NAME]
    assert len(years) == len(days) == len(months) == 1, source
    assert set(others) <= {"the", "of"}, source
    date = dt.date(years[0], months[0], days[0])
    if weekdays:
        assert weekdays == [date.weekday()], f"{source!r}: wrong weekday"
    return date


@pytest.fixture(scope="module")
def dates():
    return make_dates(600, seed=0)


def test_date_targets_are_valid_iso_dates(dates):
    for _, target in dates:
        assert dt.date.fromisoformat(target).isoformat() == target


def test_each_date_source_denotes_its_target(dates):
    for source, target in dates:
        assert parse_human_date(source) == dt.date.fromisoformat(target), source


def test_month_names_in_date_sources_match_the_target_month(dates):
    named = [(s, t) for s, t in dates if re.search(r"[A-Za-z]{3}", s)]
    assert len(named) > 300
    for source, target in named:
        month = dt.date.fromisoformat(target).month
        name = MONTHS[month - 1]
        assert name[:3].lower() in source.lower(), (source, target)


def test_slash_dates_ending_in_the_year_are_month_day_year(dates):
    us = [(s, t) for s, t in dates if "/" in s and len(s.split("/")[0]) <= 2]
    assert len(us) > 10
    for source, target in us:
        month, day, year = (int(x) for x in source.split("/"))
        assert dt.date(year, month, day).isoformat() == target


def test_year_first_slash_dates_are_year_month_day(dates):
    # The docstring says "slashes always mean month/day/year", but YYYY/MM/DD is also drawn;
    # a four-digit first field keeps it unambiguous.
    iso_like = [(s, t) for s, t in dates if "/" in s and len(s.split("/")[0]) == 4]
    assert iso_like
    for source, target in iso_like:
        assert source.replace("/", "-") == target


def test_dotted_dates_are_day_month_year(dates):
    dotted = [(s, t) for s, t in dates if "." in s]
    assert len(dotted) > 10
    for source, target in dotted:
        day, month, year = (int(x) for x in source.split("."))
        assert dt.date(year, month, day).isoformat() == target


def test_date_sources_are_distinct_and_years_stay_in_range(dates):
    sources = [s for s, _ in dates]
    assert len(set(sources)) == len(sources)
    assert all(1950 <= dt.date.fromisoformat(t).year <= 2049 for _, t in dates)


def test_dates_cover_many_formats(dates):
    shapes = {re.sub(r"[A-Za-z]+", "a", re.sub(r"\d+", "9", s)) for s, _ in dates}
    assert len(shapes) >= 8


def test_dates_are_deterministic_per_seed():
    assert make_dates(40, seed=3) == make_dates(40, seed=3)
    assert make_dates(40, seed=3) != make_dates(40, seed=4)


def test_dates_reject_a_reversed_year_range_and_impossible_n():
    with pytest.raises(ValueError, match="after end_year"):
        make_dates(5, start_year=2001, end_year=2000)
    with pytest.raises(ValueError, match="cannot draw"):
        make_dates(10_000, start_year=2000, end_year=2000)


# ----------------------------------------------------------------------------- split_dataset


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=10))
@FAST
def test_split_dataset_is_a_partition_of_the_right_sizes(n, seed):
    items = list(range(n))
    train, val, test = split_dataset(items, seed=seed)
    assert sorted(train + val + test) == items
    assert len(set(train) | set(val) | set(test)) == n
    assert len(train) == round(0.8 * n)
    assert len(train) + len(val) == round(0.9 * n)  # boundaries are rounded cumulatively


@given(
    st.integers(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
)
@FAST
def test_split_dataset_partitions_for_any_fractions(n, a, b):
    low, high = sorted((a, b))
    fractions = (low, high - low, 1 - high)
    items = list(range(n))
    train, val, test = split_dataset(items, fractions)
    assert sorted(train + val + test) == items
    for part, fraction in zip((train, val, test), fractions):
        assert abs(len(part) - fraction * n) <= 1.0 + 1e-9


def test_split_dataset_is_deterministic_and_seeded():
    items = [f"item{i}" for i in range(50)]
    assert split_dataset(items, seed=1) == split_dataset(items, seed=1)
    assert split_dataset(items, seed=1) != split_dataset(items, seed=2)
    assert split_dataset(items, seed=1)[0] != items[:40], "the split should shuffle"


def test_split_dataset_zero_fraction_gives_an_empty_part():
    for n in (1, 5, 9):
        _, _, test = split_dataset(list(range(n)), (0.5, 0.5, 0.0))
        assert test == [], f"{n} items: the test part has fraction 0 but got {test}"


@pytest.mark.parametrize(
    "fractions", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.5, 0.5), (0.9, 0.2, -0.1)]
)
def test_split_dataset_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions must be three non-negative numbers"):
        split_dataset(list(range(10)), fractions)


# ----------------------------------------------------------------------------- padding


@given(
    st.lists(st.lists(st.integers(0, 50), max_size=7), min_size=1, max_size=6),
    st.integers(0, 5),
)
@FAST
def test_pad_sequences_right_pads_with_pad_id_and_returns_lengths(seqs, pad_id):
    padded, lengths = pad_sequences(seqs, pad_id)
    assert padded.dtype == torch.long and lengths.dtype == torch.long
    assert padded.shape == (len(seqs), max(len(s) for s in seqs))
    assert lengths.tolist() == [len(s) for s in seqs]
    for row, seq in zip(padded.tolist(), seqs):
        assert row[: len(seq)] == seq
        assert row[len(seq) :] == [pad_id] * (len(row) - len(seq))


def test_pad_sequences_rejects_an_empty_list():
    with pytest.raises(ValueError, match="empty list"):
        pad_sequences([])


@given(st.lists(st.integers(0, 6), min_size=1, max_size=5), st.integers(0, 3))
@FAST
def test_lengths_to_mask_is_true_exactly_at_real_tokens(lengths, extra):
    max_len = max(lengths) + extra
    mask = lengths_to_mask(torch.tensor(lengths), max_len)
    assert mask.dtype == torch.bool
    assert mask.shape == (len(lengths), max_len)
    for row, length in zip(mask.tolist(), lengths):
        assert row == [True] * length + [False] * (max_len - length)


def test_lengths_to_mask_defaults_to_the_longest_length():
    assert lengths_to_mask(torch.tensor([2, 4])).shape == (2, 4)


# ----------------------------------------------------------------------------- batches

PAIRS = [("abc", "xy"), ("a", "xyz0"), ("ca", "9")]


@pytest.fixture
def batch(vocab):
    return collate_pairs(PAIRS, vocab, vocab)


def test_collate_pairs_shapes(batch):
    assert len(batch) == 3
    assert batch.src.shape == (3, 3)
    assert batch.src_lengths.tolist() == [3, 1, 2]
    assert batch.tgt_in.shape == batch.tgt_out.shape == batch.tgt_mask.shape == (3, 5)
    assert batch.src_mask.shape == batch.src.shape


def test_collate_pairs_teacher_forcing_targets(batch, vocab):
    for row, (_, target) in enumerate(PAIRS):
        ids = vocab.encode(target)
        n = len(ids)
        assert batch.tgt_in[row, 0] == vocab.bos_id
        assert batch.tgt_in[row, 1 : n + 1].tolist() == ids
        assert batch.tgt_out[row, :n].tolist() == ids
        assert batch.tgt_out[row, n] == vocab.eos_id
        assert (batch.tgt_out[row, n + 1 :] == vocab.pad_id).all()
        assert (batch.tgt_in[row, n + 1 :] == vocab.pad_id).all()


def test_collate_pairs_masks_match_lengths(batch, vocab):
    assert batch.src_mask.sum(dim=1).tolist() == [len(s) for s, _ in PAIRS]
    assert batch.tgt_mask.sum(dim=1).tolist() == [len(t) + 1 for _, t in PAIRS]
    assert ((batch.src == vocab.pad_id) == ~batch.src_mask).all()
    assert ((batch.tgt_out == vocab.pad_id) == ~batch.tgt_mask).all()


def test_collate_pairs_encodes_the_sources(batch, vocab):
    for row, (source, _) in enumerate(PAIRS):
        assert vocab.to_text(batch.src[row]) == source


def test_batch_to_keeps_values(batch):
    moved = batch.to("cpu")
    assert isinstance(moved, Batch)
    for name in ("src", "src_lengths", "src_mask", "tgt_in", "tgt_out", "tgt_mask"):
        assert torch.equal(getattr(moved, name), getattr(batch, name)), name


def _loader_order(loader, vocab):
    return [vocab.to_text(row) for batch in loader for row in batch.src]


@pytest.fixture
def letter_pairs():
    return make_sequence_task("copy", 40, min_len=2, max_len=6, seed=0)


def test_make_loader_shuffling_is_seeded(letter_pairs):
    vocab = Vocab(LETTERS)
    order = lambda seed: _loader_order(make_loader(letter_pairs, vocab, vocab, 8, seed=seed), vocab)
    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == sorted(s for s, _ in letter_pairs)


def test_make_loader_without_shuffle_keeps_the_order(letter_pairs):
    vocab = Vocab(LETTERS)
    loader = make_loader(letter_pairs, vocab, vocab, batch_size=16, shuffle=False)
    batches = list(loader)
    assert [len(b) for b in batches] == [16, 16, 8]
    assert all(isinstance(b, Batch) for b in batches)
    assert _loader_order(loader, vocab) == [s for s, _ in letter_pairs]


def test_digits_and_letters_constants():
    assert DIGITS == "".join(str(i) for i in range(10))
    assert len(LETTERS) == 26 and LETTERS == "".join(sorted(LETTERS))
