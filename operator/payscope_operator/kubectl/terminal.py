"""How the plugin writes for a person: colour only on a terminal, durations in words a person reads at a glance.

What it must not do: decide what is shown (the views do), or colour text that goes
to a pipe or a file (scripts and ``grep`` get plain text; ``NO_COLOR`` is honoured).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import TextIO

_CODES = {"red": "31", "green": "32", "yellow": "33", "grey": "90", "bold": "1"}


@dataclass(frozen=True)
class Palette:
    """ANSI colours, or none at all."""

    enabled: bool

    @classmethod
    def for_stream(cls, stream: TextIO) -> Palette:
        """Colour when ``stream`` is a terminal and ``NO_COLOR`` is unset."""
        isatty = getattr(stream, "isatty", None)
        return cls(bool(isatty and isatty()) and not os.environ.get("NO_COLOR"))

    def paint(self, text: str, colour: str) -> str:
        if not self.enabled or colour not in _CODES:
            return text
        return f"\033[{_CODES[colour]}m{text}\033[0m"


def duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h12m``, ``4d3h``: the way ``kubectl get`` writes ages."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def age(since: datetime.datetime | None, now: datetime.datetime) -> str:
    """How long ago ``since`` was, or ``-`` when unknown."""
    return duration((now - since).total_seconds()) if since is not None else "-"


def table(rows: list[list[str]], widths_from: list[list[str]] | None = None) -> list[str]:
    """Left-aligned columns two spaces apart, as kubectl prints them (widths from the plain text)."""
    plain = widths_from or rows
    if not plain:
        return []
    widths = [max(len(r[i]) for r in plain) for i in range(len(plain[0]))]
    lines = []
    for row, bare in zip(rows, plain, strict=True):
        cells = [cell + " " * (widths[i] - len(bare[i])) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines
