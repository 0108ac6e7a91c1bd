"""End-of-lesson quiz questions, kept as data so tests can check them.

The questions live beside each lesson's exercises (``course_utils.exercises.lessonNN.QUIZ``);
``widgets.quiz(QUIZZES["01"])`` shows a lesson's questions as multiple choice with feedback.
"""

from .exercises import QUIZZES, Question

__all__ = ["QUIZZES", "Question"]
