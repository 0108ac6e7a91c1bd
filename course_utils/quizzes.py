"""End-of-lesson quiz questions, kept as data so tests can check them.

``widgets.quiz(QUIZZES["01"])`` shows a lesson's questions as multiple choice with feedback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """A multiple-choice question; ``answer`` indexes ``options``; ``why`` is shown after."""

    prompt: str
    options: tuple[str, ...]
    answer: int
    why: str

    def __post_init__(self):
        if len(self.options) < 2:
            raise ValueError(f"a question needs at least two options: {self.prompt!r}")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer {self.answer} is not an option index: {self.prompt!r}")

    def grade(self, choice: int | None) -> tuple[bool, str]:
        """(correct?, feedback) for the option index a learner picked."""
        if choice is None:
            return False, "Pick an option first."
        if not 0 <= choice < len(self.options):
            raise ValueError(f"choice {choice} is not an option index (0..{len(self.options) - 1})")
        if choice == self.answer:
            return True, f"Correct. {self.why}"
        return False, f"Not quite. {self.why}"


QUIZZES: dict[str, list[Question]] = {
    "00": [
        Question(
            "A cell's output in the stored notebook differs from what you get. What should you "
            "check first?",
            (
                "Whether you ran the cells above it, in order",
                "Whether your GPU is fast enough",
                "Nothing: outputs are random",
            ),
            0,
            "Lessons are written to run top to bottom; a skipped cell leaves names undefined "
            "or stale. Every random choice is seeded, so a run in order reproduces the outputs.",
        ),
        Question(
            "Raising the softmax temperature (dividing the scores by a larger number) makes the "
            "weights...",
            ("sharper, closer to one-hot", "flatter, closer to uniform", "unchanged"),
            1,
            "Dividing by a large temperature shrinks the gaps between scores, so exp() of them "
            "are closer together. Lesson 04 meets the same effect as the 1/sqrt(d_k) scale.",
        ),
    ],
    "01": [
        Question(
            "In the bottleneck model, what does the decoder know about the source sentence?",
            (
                "Every encoder state, one per source token",
                "Only the encoder's final hidden state",
                "The source tokens themselves",
            ),
            1,
            "Everything passes through one fixed-size vector, the context vector.",
        ),
        Question(
            "Why does accuracy fall as the input gets longer?",
            (
                "Long inputs have rarer symbols",
                "The model saw no long inputs in training",
                "A fixed-size vector must hold more and more information",
                "Greedy decoding stops too early",
            ),
            2,
            "The training data has every length from 4 to 40 equally often; what grows is how "
            "much the one context vector has to remember.",
        ),
        Question(
            "Which change lets the decoder look at every encoder state directly?",
            ("A bigger hidden size", "Attention", "A second GRU layer", "Reversing the input"),
            1,
            "A bigger state or a reversed input (Sutskever et al.'s trick) only delay the "
            "problem; attention (lesson 02) gives each output step its own view of the input.",
        ),
    ],
}
