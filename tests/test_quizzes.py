"""quizzes: every question is well formed and grades its own answer as correct."""

from __future__ import annotations

import re

import numpy as np
import pytest

from course_utils.quizzes import QUIZZES, Question

ALL_QUESTIONS = [
    pytest.param(question, id=f"{lesson}-{number}")
    for lesson, questions in QUIZZES.items()
    for number, question in enumerate(questions, start=1)
]


def test_lessons_00_and_01_have_quizzes():
    assert len(QUIZZES["00"]) >= 1
    assert len(QUIZZES["01"]) >= 1


def test_quiz_keys_are_two_digit_lesson_numbers():
    assert all(len(key) == 2 and key.isdigit() for key in QUIZZES)


@pytest.mark.parametrize("question", ALL_QUESTIONS)
def test_question_is_well_formed(question):
    assert question.prompt.strip()
    assert len(question.options) >= 2
    assert all(option.strip() for option in question.options)
    assert len(set(question.options)) == len(question.options), "options repeat"
    assert 0 <= question.answer < len(question.options)
    assert question.why.strip()


@pytest.mark.parametrize("question", ALL_QUESTIONS)
def test_grade_accepts_the_answer_and_rejects_every_other_option(question):
    correct, feedback = question.grade(question.answer)
    assert correct is True
    assert feedback.startswith("Correct")
    assert question.why in feedback
    for choice in range(len(question.options)):
        if choice != question.answer:
            correct, feedback = question.grade(choice)
            assert correct is False
            assert feedback.startswith("Not quite")
            assert question.why in feedback


@pytest.fixture
def question():
    return Question("2 + 2?", ("3", "4", "5"), 1, "Two and two make four.")


def test_grade_without_a_choice_asks_for_one(question):
    assert question.grade(None) == (False, "Pick an option first.")


@pytest.mark.parametrize("choice", [-1, 3, 10])
def test_grade_rejects_an_out_of_range_choice(question, choice):
    with pytest.raises(ValueError, match=rf"choice {choice} is not an option index \(0\.\.2\)"):
        question.grade(choice)


@pytest.mark.parametrize("choice", ["0", "4", 1.0, True])
def test_grade_refuses_a_choice_that_is_not_an_index_and_names_it(question, choice):
    # the quiz widget passes the picked option's index (an int); a string is a mistake
    with pytest.raises(TypeError, match=rf"an int in 0\.\.2, got {re.escape(repr(choice))}"):
        question.grade(choice)


def test_grade_accepts_a_numpy_integer(question):
    assert question.grade(np.int64(1))[0]


def test_question_needs_at_least_two_options():
    with pytest.raises(ValueError, match="at least two options"):
        Question("only one?", ("yes",), 0, "why")


@pytest.mark.parametrize("answer", [-1, 2])
def test_question_answer_must_index_an_option(answer):
    with pytest.raises(ValueError, match=f"answer {answer} is not an option index"):
        Question("which?", ("a", "b"), answer, "why")


def test_questions_are_immutable(question):
    with pytest.raises(AttributeError):
        question.answer = 0
