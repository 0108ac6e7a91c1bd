"""token_ids: the one check every model runs on its ids before the embedding."""

from __future__ import annotations

import pytest
import torch

from course_utils.token_ids import check_token_ids


@pytest.mark.parametrize("dtype", [torch.long, torch.int])
def test_integer_ids_inside_the_vocabulary_pass(dtype):
    check_token_ids(torch.tensor([[0, 4], [9, 2]], dtype=dtype), 10)
    check_token_ids(torch.zeros(2, 0, dtype=dtype), 10)  # nothing to look up


@pytest.mark.parametrize(
    ("ids", "words"), [([[0, 10]], "from 0 to 10"), ([[-3, 2]], "from -3 to 2")]
)
def test_ids_outside_the_vocabulary_are_named_with_the_valid_range(ids, words):
    with pytest.raises(
        ValueError, match=rf"ids must be in \[0, 10\) \(the vocabulary size\), got ids {words}"
    ):
        check_token_ids(torch.tensor(ids), 10, "ids")


def test_non_integer_ids_name_their_dtype_and_a_list_its_type():
    with pytest.raises(ValueError, match=r"integer token ids \(torch.long\), got torch.float16"):
        check_token_ids(torch.zeros(2, 3, dtype=torch.float16), 10)
    with pytest.raises(ValueError, match="a tensor of integer ids, got list"):
        check_token_ids([1, 2], 10)
