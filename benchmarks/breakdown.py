"""Where an operator process's main thread spent its time, from a cProfile dump, by category and by function.

Why it exists: ``benchmarks/scale.py`` runs the operator under ``python -m cProfile``
for one apply of many resources and prints this breakdown beside the figures, so
the reason behind an apply-to-status time is on the same page: waiting in the event
loop's ``epoll`` (nothing to do: I/O, or sleeping), Postgres (psycopg), the
Kubernetes side (kopf, aiohttp, the kubernetes client), validation (pydantic), the
operator's own Python, asyncio's machinery, and the rest.

Categories sum the functions' own time (``tottime``), so they add up to the
profiled wall time of the main thread. cProfile sees only the main thread: the
blocking Kubernetes client and boto3 run in executor threads, whose time shows
here as waits (their CPU is in the process's CPU seconds, which the benchmark
prints separately).

What it must not do: run or time anything itself.
"""

from __future__ import annotations

import pstats
from pathlib import Path

Key = tuple[str, int, str]

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Postgres (psycopg)", ("/psycopg/", "/psycopg_binary/")),
    ("Kubernetes side (kopf, aiohttp, kubernetes, urllib3)", ("/kopf/", "/aiohttp/", "/kubernetes/", "/urllib3/")),
    ("validation (pydantic)", ("/pydantic/", "/pydantic_core/")),
    ("operator's Python (payscope_operator)", ("/payscope_operator/",)),
    ("asyncio machinery", ("/asyncio/",)),
    ("logging", ("/logging/",)),
)
WAIT_MARKERS = ("select.epoll", "select.poll", "select.select", "selectors")


def _category(key: Key) -> str:
    filename, _, function = key
    if filename == "~":
        return "waiting in the event loop (epoll)" if any(m in function for m in WAIT_MARKERS) else "other builtins"
    for name, markers in CATEGORIES:
        if any(m in filename for m in markers):
            return name
    return "other Python (json, ssl, stdlib, ...)"


def _raw(stats: pstats.Stats) -> dict[Key, tuple[int, int, float, float, object]]:
    raw: dict[Key, tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    return raw


def by_category(path: Path) -> list[tuple[str, float]]:
    """(category, seconds of own time), largest first."""
    totals: dict[str, float] = {}
    for key, (_, _, own, _, _) in _raw(pstats.Stats(str(path))).items():
        name = _category(key)
        totals[name] = totals.get(name, 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])


def top_cumulative(path: Path, count: int = 15, within: str = "/payscope_operator/") -> list[tuple[str, int, float]]:
    """The operator's functions by cumulative time: (``module:function``, calls, seconds)."""
    rows = []
    for (filename, _, function), (_, calls, _, cumulative, _) in _raw(pstats.Stats(str(path))).items():
        if within in filename:
            module = filename.split(within, 1)[1].removesuffix(".py").replace("/", ".")
            rows.append((f"{module}:{function}", calls, cumulative))
    return sorted(rows, key=lambda row: -row[2])[:count]


def render(path: Path) -> list[str]:
    categories = by_category(path)
    total = sum(seconds for _, seconds in categories) or 1.0
    lines = [f"  main thread, {total:.1f}s profiled, by category (own time):"]
    lines += [f"    {seconds:8.2f}s {100 * seconds / total:5.1f}%  {name}" for name, seconds in categories]
    lines.append("  the operator's functions by cumulative time (coroutines: time until they returned):")
    lines += [f"    {seconds:8.2f}s {calls:>8} calls  {name}" for name, calls, seconds in top_cumulative(path)]
    return lines
