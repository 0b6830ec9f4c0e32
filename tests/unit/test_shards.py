"""Shard ownership: every uid owned by exactly one shard, stably, evenly enough; the flags and the ordinal.

Pure: no cluster. The e2e test (tests/e2e/test_shards.py) shows two operator
processes splitting real resources this way.
"""

from __future__ import annotations

import uuid

import pytest

from payscope_operator import cli
from payscope_operator.reconcile import shards

UIDS = [str(uuid.UUID(int=n * 7919 + 17, version=4)) for n in range(2000)]


@pytest.mark.parametrize("total", [1, 2, 3, 5])
def test_every_uid_is_owned_by_exactly_one_shard(total: int) -> None:
    for uid in UIDS:
        owners = [i for i in range(total) if shards.Shard(i, total).owns(uid)]
        assert owners == [shards.shard_of(uid, total)]


def test_ownership_is_the_same_in_every_process() -> None:
    # sha256, not Python's salted hash(): fixed values a second process (or a later version) must agree with.
    assert shards.shard_of("0c1d2a54-6a3a-4f0e-9d1e-1b7f3c9e2a10", 2) == 1
    assert shards.shard_of("0c1d2a54-6a3a-4f0e-9d1e-1b7f3c9e2a10", 3) == 0
    assert shards.shard_of("", 4) == int.from_bytes(bytes.fromhex("e3b0c44298fc1c14"), "big") % 4


@pytest.mark.parametrize("total", [2, 4])
def test_uids_spread_evenly(total: int) -> None:
    counts = [sum(shards.shard_of(uid, total) == i for uid in UIDS) for i in range(total)]
    assert all(abs(c - len(UIDS) / total) < 0.1 * len(UIDS) / total for c in counts), counts


def test_one_shard_owns_everything() -> None:
    assert all(shards.Shard().owns(uid) for uid in UIDS[:50])


@pytest.mark.parametrize(
    ("hostname", "ordinal"),
    [("payscope-operator-2", 2), ("payscope-operator-10", 10), ("payscope-operator", None), ("op-x", None)],
)
def test_ordinal_of_a_statefulset_pod(hostname: str, ordinal: int | None) -> None:
    assert shards.ordinal_of(hostname) == ordinal


def test_resolve_takes_the_flag_then_the_hostname() -> None:
    assert shards.resolve(None, 1, "anything") == shards.Shard()
    assert shards.resolve(1, 3, "payscope-operator-2") == shards.Shard(1, 3)
    assert shards.resolve(None, 3, "payscope-operator-2") == shards.Shard(2, 3)


@pytest.mark.parametrize(
    ("index", "total", "hostname", "message"),
    [
        (None, 2, "laptop", "needs --shard"),
        (2, 2, "x", "--shard must lie in [0, 2)"),
        (None, 2, "payscope-operator-5", "--shard must lie in [0, 2)"),
        (0, 0, "x", "--total-shards must be 1 or more"),
    ],
)
def test_resolve_refuses_what_cannot_be_a_shard(index: int | None, total: int, hostname: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        shards.resolve(index, total, hostname)


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = cli.parser().parse_args(["run"])
    assert (args.shard, args.total_shards) == (None, 1)
    args = cli.parser().parse_args(["run", "--shard", "1", "--total-shards", "2"])
    assert (args.shard, args.total_shards) == (1, 2)
    monkeypatch.setenv("PAYSCOPE_SHARD", "3")
    monkeypatch.setenv("PAYSCOPE_TOTAL_SHARDS", "4")
    args = cli.parser().parse_args(["run"])
    assert (args.shard, args.total_shards) == (3, 4)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", "--shard", "-1"])
