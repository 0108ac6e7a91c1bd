"""Multiple-choice quizzes with feedback, from the question data in ``course_utils.exercises``."""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as widgets

from ..exercises import Question


def quiz(questions: Sequence[Question]) -> widgets.VBox:
    """Multiple-choice questions, each with a Check button and feedback."""
    rows = []
    for number, question in enumerate(questions, start=1):
        choice = widgets.RadioButtons(
            options=[(text, i) for i, text in enumerate(question.options)],
            value=None,
            layout=widgets.Layout(width="auto"),
        )
        button = widgets.Button(description="Check", button_style="info")
        feedback = widgets.HTML()

        def check(_, question=question, choice=choice, feedback=feedback):
            correct, text = question.grade(choice.value)
            colour = "#137333" if correct else "#a50e0e"
            feedback.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

        button.on_click(check)
        rows.append(
            widgets.VBox(
                [
                    widgets.HTML(f"<b>{number}. {html.escape(question.prompt)}</b>"),
                    choice,
                    button,
                    feedback,
                ]
            )
        )
    return widgets.VBox(rows)
