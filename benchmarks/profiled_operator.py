"""``payscope-operator`` under cProfile, switched on after the imports: the profile holds the work, not the start.

Why it exists: ``benchmarks/scale.py`` profiles the operator through an apply of many
resources; ``python -m cProfile`` would also count importing kopf, the catalog and
every driver, which dwarfs a short apply. This script imports the operator first,
then profiles ``payscope-operator run ...`` until it stops (SIGTERM: kopf stops
gracefully and ``cli.main`` returns), and dumps the profile.

What it must not do: change how the operator runs, or be installed with it.

    python benchmarks/profiled_operator.py OUT.prof run --namespaces NS ...
"""

from __future__ import annotations

import cProfile
import sys

from payscope_operator import cli, main  # noqa: F401 - main (kopf, the catalog, the drivers) imported before profiling


def profiled(out: str, argv: list[str]) -> int:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return cli.main(argv)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    sys.exit(profiled(sys.argv[1], sys.argv[2:]))
