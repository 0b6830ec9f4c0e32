"""``payscope-operator`` under tracemalloc, switched on after the imports; a snapshot on SIGUSR1.

Why it exists: ``benchmarks/memory.py`` asks where a running operator's memory is
held (by what it allocated, not by what the imports cost). This script imports the
operator, starts tracemalloc with ``FRAMES`` frames per allocation, runs
``payscope-operator run ...`` and, each time it receives SIGUSR1, writes a snapshot
to ``OUT`` (then renames it into place, so a reader never sees half a file).

What it must not do: change how the operator runs, or be installed with it.

    python benchmarks/traced_operator.py OUT.snapshot run --namespaces NS ...
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from types import FrameType

from payscope_operator import cli, main  # noqa: F401 - imported before tracing starts

FRAMES = 8


def traced(out: str, argv: list[str]) -> int:
    def snapshot(_signum: int, _frame: FrameType | None) -> None:
        partial = f"{out}.partial"
        tracemalloc.take_snapshot().dump(partial)
        os.replace(partial, out)

    signal.signal(signal.SIGUSR1, snapshot)
    tracemalloc.start(FRAMES)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(traced(sys.argv[1], sys.argv[2:]))
