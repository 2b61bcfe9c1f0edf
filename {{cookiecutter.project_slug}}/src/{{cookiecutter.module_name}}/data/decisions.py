"""Pass 1's verdict on every row of curate's input, by row index: what pass 2 writes and the
report counts."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .formats import Format


@dataclass
class Decisions:
    """Pass 1's verdict on every row, by row index (the order rows were read)."""

    formats: dict[str, Format] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)
    duplicate_of: dict[int, tuple[str, int, float]] = field(default_factory=dict)
    group_of: dict[int, int] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)
    trainable: dict[int, int] = field(default_factory=dict)  # SFT rows: tokens TRL trains on
    format_flags: Counter = field(default_factory=Counter)
    ids: dict[int, str] = field(default_factory=dict)  # content-hash id of each unique row
    targets: dict[str, Any] = field(default_factory=dict)  # see targets.target_summary
    chat: dict[str, Any] = field(default_factory=dict)  # how rows are rendered (curation.Counting)
    rows_in: int = 0
