"""tasks.digits: scikit-learn's bundled digits, split the same way every time, every class in
every part, no image in two parts."""

from __future__ import annotations

import pytest
import torch

from course_utils.tasks import load_digits_split


def test_split_is_seeded_and_stratified():
    split = load_digits_split(seed=0)
    (train_x, train_y), (_, val_y), (_, test_y) = split.train, split.val, split.test
    assert len(train_y) + len(val_y) + len(test_y) == 1797
    assert train_x.shape[1:] == (1, 8, 8) and train_x.dtype == torch.float32
    assert 0.0 <= float(train_x.min()) and float(train_x.max()) <= 1.0
    assert len(test_y) == pytest.approx(0.2 * 1797, abs=2)
    for labels in (train_y, val_y, test_y):
        shares = torch.bincount(labels, minlength=10).float() / len(labels)
        assert torch.all((shares - 0.1).abs() < 0.02), shares  # every class ~10 % everywhere
    again = load_digits_split(seed=0)
    assert torch.equal(again.test[1], test_y) and torch.equal(again.train[0], train_x)
    other = load_digits_split(seed=1)
    assert not torch.equal(other.test[1], test_y)


def test_split_parts_together_are_the_whole_dataset_once():
    split = load_digits_split(seed=0)
    total = torch.cat([split.train[0], split.val[0], split.test[0]]).flatten(1)
    assert total.shape[0] == 1797
    # the union is the whole dataset: sorting rows gives the same multiset as the source
    from sklearn.datasets import load_digits

    source = torch.tensor(load_digits().images, dtype=torch.float32).flatten(1) / 16.0
    assert torch.equal(total.sort(dim=0).values, source.sort(dim=0).values)


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="summing to 1"):
        load_digits_split((0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="three positive"):
        load_digits_split((0.8, 0.2))
