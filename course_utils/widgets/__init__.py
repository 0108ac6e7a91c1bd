"""The interactive explorers, one module per idea. The logic lives in plain functions that
tests call directly; each explorer wires them to ipywidgets controls and returns the box.

Every explorer draws something sensible at every control value, including the extremes, and
shows a learner's bad input as a message instead of a traceback.
"""

from . import alignment, generation, heads, luong, positions, scaling, translation, vision
from .alignment import *  # noqa: F403  (each module lists its names in __all__)
from .generation import *  # noqa: F403
from .heads import *  # noqa: F403
from .luong import *  # noqa: F403
from .positions import *  # noqa: F403
from .quiz import quiz
from .scaling import *  # noqa: F403
from .seq2seq import bottleneck_explorer, highlight_errors, seq2seq_case
from .softmax import entropy, softmax_explorer, temperature_softmax
from .translation import *  # noqa: F403
from .vision import *  # noqa: F403

__all__ = [
    "bottleneck_explorer",
    "entropy",
    "highlight_errors",
    "quiz",
    "seq2seq_case",
    "softmax_explorer",
    "temperature_softmax",
    *alignment.__all__,
    *generation.__all__,
    *heads.__all__,
    *luong.__all__,
    *positions.__all__,
    *scaling.__all__,
    *translation.__all__,
    *vision.__all__,
]
