"""Assertions that several test files share. pytest puts tests/ on sys.path (as it does for
conftest.py), so a test file imports them with ``from checks import ...``."""

from __future__ import annotations

from course_utils.exercises import FAILED, CheckResult


def assert_rejected(result: CheckResult, words: str) -> None:
    """The checker failed the answer, with a message that contains ``words``."""
    assert result.status == FAILED, result
    assert not result.passed
    assert words in result.message, result.message
