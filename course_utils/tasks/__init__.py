"""Seeded tasks and datasets for the Transformer lessons, one module per family.

``tagging`` (loader, loss and accuracy for per-position labels), ``order`` (lesson 05: tasks
that need positions), ``relations`` (lesson 06: outputs that combine two different relations),
``arithmetic`` (lesson 07: a generated corpus of sums for a tiny GPT) and ``digits`` (lesson 09:
scikit-learn's bundled 8×8 digits, split). Like ``course_utils.data``, nothing is downloaded.
"""

from . import arithmetic, digits, order, relations, tagging
from .arithmetic import *  # noqa: F403  (each module lists its names in __all__)
from .digits import *  # noqa: F403
from .order import *  # noqa: F403
from .relations import *  # noqa: F403
from .tagging import *  # noqa: F403

__all__ = [
    *tagging.__all__,
    *order.__all__,
    *relations.__all__,
    *arithmetic.__all__,
    *digits.__all__,
]
