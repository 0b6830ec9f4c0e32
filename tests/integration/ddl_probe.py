"""Proof on the server's side that a session sent no DDL: an event trigger that reports each command to it.

Why it exists: the Postgres and TimescaleDB provisioner tests prove that an unchanged
pass sends nothing, and only the server can say what it received (even a no-op
``CREATE INDEX IF NOT EXISTS`` is DDL). :func:`install` creates, in ``schema``, a
function and an event trigger ``name`` on ``ddl_command_start``; the trigger RAISEs a
NOTICE with the command tag, only to sessions that :func:`listen` (they set
``payscope_test.ddl_probe`` to ``name``), so tests sharing a database do not hear each
other. It only RAISEs: a write would take a transaction id and make ``DROP INDEX
CONCURRENTLY`` refuse to run ("must be first action in transaction").

What it must not do: write anything, or report another test's session.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

SETTING = "payscope_test.ddl_probe"
PREFIX = "ddl_probe:"


def install(schema: str, name: str) -> list[sql.Composed]:
    """The statements creating the probe (run them as a superuser); :func:`remove` drops the trigger."""
    function = sql.Identifier(schema, "ddl_probe")
    return [
        sql.SQL(
            "CREATE FUNCTION {f}() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF current_setting({setting}, true) = {name} THEN RAISE NOTICE {prefix}, tg_tag; END IF; END $$"
        ).format(f=function, setting=sql.Literal(SETTING), name=sql.Literal(name), prefix=sql.Literal(PREFIX + "%")),
        sql.SQL("CREATE EVENT TRIGGER {} ON ddl_command_start EXECUTE FUNCTION {}()").format(
            sql.Identifier(name), function
        ),
    ]


def remove(name: str) -> sql.Composed:
    return sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(sql.Identifier(name))


async def listen(conn: psycopg.AsyncConnection[Any], name: str) -> list[str]:
    """Turn on ``conn``'s DDL reports of probe ``name``; returns the list the command tags are collected into."""
    seen: list[str] = []

    def collect(notice: psycopg.errors.Diagnostic) -> None:
        text = notice.message_primary or ""
        if text.startswith(PREFIX):
            seen.append(text.removeprefix(PREFIX))

    conn.add_notice_handler(collect)
    await conn.execute("SELECT set_config(%s, %s, false)", (SETTING, name))
    return seen
