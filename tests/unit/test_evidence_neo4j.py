"""What Neo4j's statistics settle about untenanted nodes without a scan (``backends.neo4j.evidence.judge``).

Pure: table tests over label statistics as ``db.stats.retrieve('GRAPH COUNTS')`` gives them.
"""

from __future__ import annotations

import pytest

from payscope_operator.backends.neo4j import evidence

Stats = evidence.LabelStatistics


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        pytest.param(Stats("A", 0), (0, True), id="no-node"),
        pytest.param(Stats("A", 0, indexed=0, updates=5), (0, True), id="no-node-after-updates"),
        pytest.param(Stats("A", 100), None, id="no-index-needs-a-scan"),
        pytest.param(Stats("A", 100, indexed=100), (0, True), id="index-covers-every-node"),
        pytest.param(Stats("A", 103, indexed=100), (3, True), id="nodes-added-without-the-key"),
        pytest.param(Stats("A", 100, indexed=100, updates=2), None, id="updated-since-the-sample"),
        pytest.param(Stats("A", 110, indexed=100, updates=4), (6, False), id="updated-but-surely-some"),
        pytest.param(Stats("A", 90, indexed=100), (0, True), id="sample-larger-than-count-never-negative"),
    ],
)
def test_statistics_settle_what_they_can(stats: evidence.LabelStatistics, expected: tuple[int, bool] | None) -> None:
    known = evidence.judge(stats)
    assert (None if known is None else (known.untenanted, known.exact)) == expected
