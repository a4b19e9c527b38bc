"""What every explain function returns: the files it wrote and the numbers it drew."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ExplainResult:
    """The outcome of one topic.

    Attributes
    ----------
    topic : the topic name, e.g. ``"convolution"``
    files : the files written (PNG and GIF), in the order the page shows them
    numbers : every array and value the figures show (NumPy arrays, ints, floats,
        strings) as clearconv computed them: clearconv.reference for the formulas, the
        model's layers for the model topic; the tests hold them to the ops
    description : one sentence saying what was computed, with its key numbers
    captions : one sentence per file name: what that file shows
    title : the figure title (with the MATH.md section)
    """

    topic: str
    files: list[Path]
    numbers: dict[str, Any]
    description: str
    captions: dict[str, str] = field(default_factory=dict)
    title: str = ""
