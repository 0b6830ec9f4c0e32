"""Reference implementation of the PayScope audit-log hash chain (contract version 1).

Why it exists: the G.audit checks verify that every row of PayScope's audit-log
table chains to the previous one. The contract defines the hash to the byte;
this module is that definition executed, so tests can seed a real Postgres
table with a valid chain, tamper with it, and hold the operator's verifier to
the same bytes. The golden vector in docs/payscope-contract.md comes from here.

The hash of a row::

    hash = sha256_hex(prev_hash + "|" + canonical_json([id, ts, bank_id, actor, operation, payload]))

with ``ts`` written ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC, canonical JSON as
``json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
(equal to RFC 8785 for the values allowed: no floats, ASCII keys, integers
within ±2**53), and the genesis row's ``prev_hash`` 64 zeros.

What it must not do: talk to a database (``ddl`` only composes statements),
accept a naive timestamp, or accept a payload whose canonical form would
differ between a verifier that reads it back from jsonb and the writer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias, TypedDict

from psycopg import sql

GENESIS_HASH = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1

JsonValue: TypeAlias = bool | int | str | list["JsonValue"] | dict[str, "JsonValue"] | None


class AuditEntry(TypedDict):
    """What a writer records: one operation by one actor for one bank."""

    ts: dt.datetime
    bank_id: str
    actor: str
    operation: str
    payload: dict[str, JsonValue]


class AuditRow(AuditEntry):
    """A stored row: the entry plus its id and both hashes."""

    id: int
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainBreak:
    """The first row at which the chain does not verify, and why."""

    row_id: int
    reason: Literal["order", "prev_hash", "hash"]


#: The golden vector of docs/payscope-contract.md §12.2 (row 2 written at +01:00 on purpose).
GOLDEN_ENTRIES: list[AuditEntry] = [
    {
        "ts": dt.datetime(2026, 1, 15, 9, 30, 0, 123456, tzinfo=dt.UTC),
        "bank_id": "bank-a",
        "actor": "alice",
        "operation": "chat.query",
        "payload": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "intent": "FORECAST"},
    },
    {
        "ts": dt.datetime(2026, 1, 15, 10, 31, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "bank_id": "bank-b",
        "actor": "payscope-audit",
        "operation": "admin.read",
        "payload": {"path": "/admin/agents", "ok": True, "n": 3, "tags": ["a", "é|b"]},
    },
]
GOLDEN_HASHES = [
    "ed8e4e1dbb04f0dc2ae8dc338c5206d1b1dce5952b802200c1c8a83b8354581b",
    "be2ad1586c1448a248f46fab2b64b4118d6520ad0090144d07240073c3f44eed",
]


def format_ts(ts: dt.datetime) -> str:
    """The timestamp as hashed: UTC, microseconds, ``Z``."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check(value: object, where: str) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{where}: integer beyond ±2**53")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ValueError(f"{where}: keys must be ASCII strings")
            _check(item, f"{where}.{key}")
        return
    raise ValueError(f"{where}: {type(value).__name__} is not allowed (floats are not: use strings)")


def canonical_json(value: JsonValue) -> str:
    """The canonical JSON text of an allowed value."""
    _check(value, "payload")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(
    prev_hash: str, *, row_id: int, ts: dt.datetime, bank_id: str, actor: str, operation: str, payload: JsonValue
) -> str:
    """The ``hash`` column of a row whose predecessor's hash is ``prev_hash``."""
    content = canonical_json([row_id, format_ts(ts), bank_id, actor, operation, payload])
    return hashlib.sha256(f"{prev_hash}|{content}".encode()).hexdigest()


def append(rows: list[AuditRow], entry: AuditEntry, *, row_id: int | None = None) -> AuditRow:
    """Chain ``entry`` after ``rows`` (ids ascend; gaps are allowed) and return the new row."""
    prev = rows[-1] if rows else None
    new_id = row_id if row_id is not None else (prev["id"] + 1 if prev else 1)
    if prev is not None and new_id <= prev["id"]:
        raise ValueError("ids must ascend along the chain")
    prev_hash = prev["hash"] if prev else GENESIS_HASH
    digest = row_hash(
        prev_hash,
        row_id=new_id,
        ts=entry["ts"],
        bank_id=entry["bank_id"],
        actor=entry["actor"],
        operation=entry["operation"],
        payload=entry["payload"],
    )
    row: AuditRow = {**entry, "id": new_id, "prev_hash": prev_hash, "hash": digest}
    rows.append(row)
    return row


def chain(entries: Iterable[AuditEntry]) -> list[AuditRow]:
    """A valid chain of the entries, ids 1, 2, 3..."""
    rows: list[AuditRow] = []
    for entry in entries:
        append(rows, entry)
    return rows


def verify(rows: Iterable[AuditRow]) -> ChainBreak | None:
    """Check rows in id order from the genesis row; None when the whole chain holds."""
    prev_id: int | None = None
    prev_hash = GENESIS_HASH
    for row in rows:
        if prev_id is not None and row["id"] <= prev_id:
            return ChainBreak(row["id"], "order")
        if row["prev_hash"] != prev_hash:
            return ChainBreak(row["id"], "prev_hash")
        expected = row_hash(
            prev_hash,
            row_id=row["id"],
            ts=row["ts"],
            bank_id=row["bank_id"],
            actor=row["actor"],
            operation=row["operation"],
            payload=row["payload"],
        )
        if row["hash"] != expected:
            return ChainBreak(row["id"], "hash")
        prev_id, prev_hash = row["id"], row["hash"]
    return None


def ddl(table: str = "audit_log", app_role: str = "payscope_app") -> list[sql.Composed]:
    """The contract's table, and the app role's grants: SELECT and INSERT, never UPDATE, DELETE or TRUNCATE."""
    name, role = sql.Identifier(table), sql.Identifier(app_role)
    sequence = sql.Identifier(f"{table}_id_seq")
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " id bigserial PRIMARY KEY,"
            " ts timestamptz NOT NULL,"
            " bank_id text NOT NULL,"
            " actor text NOT NULL,"
            " operation text NOT NULL,"
            " payload jsonb NOT NULL DEFAULT '{{}}'::jsonb,"
            " prev_hash char(64) NOT NULL,"
            " hash char(64) NOT NULL UNIQUE)"
        ).format(name),
        sql.SQL("REVOKE ALL ON {} FROM {}").format(name, role),
        sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(name, role),
        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(sequence, role),
    ]


def seed(table: str = "audit_log", app_role: str = "payscope_app") -> list[tuple[sql.Composed, tuple[object, ...]]]:
    """:func:`ddl`, then the golden chain inserted: (statement, parameters) pairs of an intact audit log."""
    insert = sql.SQL(
        "INSERT INTO {} (id, ts, bank_id, actor, operation, payload, prev_hash, hash)"
        " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
    ).format(sql.Identifier(table))
    rows = [
        (insert, (row["id"], row["ts"], row["bank_id"], row["actor"], row["operation"],
                  canonical_json(row["payload"]), row["prev_hash"], row["hash"]))
        for row in chain(GOLDEN_ENTRIES)
    ]  # fmt: skip
    return [*((statement, ()) for statement in ddl(table, app_role)), *rows]


def as_row(record: Mapping[str, object]) -> AuditRow:
    """A row read back from Postgres (a dict row), checked and typed for ``verify``."""
    row_id, ts, payload = record["id"], record["ts"], record["payload"]
    texts = [record[name] for name in ("bank_id", "actor", "operation", "prev_hash", "hash")]
    if not isinstance(row_id, int) or not isinstance(ts, dt.datetime) or not isinstance(payload, dict):
        raise ValueError("expected id bigint, ts timestamptz and payload a JSON object")
    if not all(isinstance(text, str) for text in texts):
        raise ValueError("expected bank_id, actor, operation, prev_hash and hash as text")
    bank_id, actor, operation, prev_hash, digest = (str(text) for text in texts)
    return {
        "id": row_id,
        "ts": ts,
        "bank_id": bank_id,
        "actor": actor,
        "operation": operation,
        "payload": payload,
        "prev_hash": prev_hash,
        "hash": digest,
    }
