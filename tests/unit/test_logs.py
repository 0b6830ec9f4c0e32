"""Log lines: JSON shape, context fields from ``bind``, and secret masking on real log records.

Each test builds a real handler with ``logs.make_handler`` on a logger of its own,
emits through the standard ``logging`` API (including a third-party-style logger
and an exception), and reads what the handler wrote.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from payscope_operator import logs


@pytest.fixture(autouse=True)
def fresh_secrets() -> Iterator[None]:
    logs.SECRETS.clear()
    yield
    logs.SECRETS.clear()


def _logger(fmt: logs.Format) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(logs.make_handler(fmt, stream))
    return logger, stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_time_level_logger_message() -> None:
    logger, stream = _logger("json")
    logger.warning("pass took %.1fs", 2.5)
    (line,) = _lines(stream)
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["level"] == "warning"
    assert line["logger"] == logger.name
    assert line["message"] == "pass took 2.5s"
    assert line["time"].endswith("Z")
    assert "T" in line["time"]


def test_bound_context_is_on_every_line_in_order() -> None:
    logger, stream = _logger("json")
    with logs.bind(namespace="bank-a", name="payscope", pass_id="c0ffee00"):
        logger.info("provisioning")
        with logs.bind(system="postgres"):
            logger.info("applied")
        with logs.bind(check="B.rls.enabled"):
            logger.info("evaluated")
    logger.info("idle")
    first, second, third, idle = _lines(stream)
    assert {k: first[k] for k in ("namespace", "name", "pass_id")} == {
        "namespace": "bank-a",
        "name": "payscope",
        "pass_id": "c0ffee00",
    }
    assert "system" not in first
    assert second["system"] == "postgres"
    assert second["pass_id"] == "c0ffee00"
    assert third["check"] == "B.rls.enabled"
    assert "system" not in third
    assert list(second) == ["time", "level", "logger", "message", "namespace", "name", "pass_id", "system"]
    assert "namespace" not in idle


async def test_task_binding_reaches_child_tasks_and_stays_in_its_task() -> None:
    logger, stream = _logger("json")

    async def probe() -> None:
        logger.info("probe")

    async def one_pass(name: str) -> None:
        logs.bind_task(namespace="ns", name=name, pass_id=logs.new_pass_id())
        await asyncio.gather(probe(), probe())

    await asyncio.gather(asyncio.create_task(one_pass("a")), asyncio.create_task(one_pass("b")))
    logger.info("after")
    lines = _lines(stream)
    names = sorted(line.get("name", "-") for line in lines)
    assert names == ["-", "a", "a", "b", "b"]
    passes: dict[str, set[str]] = {line["name"]: set() for line in lines if "name" in line}
    for line in lines:
        if "name" in line:
            passes[line["name"]].add(line["pass_id"])
    assert all(len(ids) == 1 for ids in passes.values())
    assert passes["a"] != passes["b"]


def test_kopf_object_reference_gives_namespace_and_name() -> None:
    logger, stream = _logger("json")
    logger.info("Handler succeeded.", extra={"k8s_ref": {"namespace": "bank-b", "name": "psd", "kind": "X"}})
    (line,) = _lines(stream)
    assert (line["namespace"], line["name"]) == ("bank-b", "psd")


@pytest.mark.parametrize("fmt", logs.FORMATS)
def test_registered_secret_is_masked_in_message_args_and_exception(fmt: logs.Format) -> None:
    logger, stream = _logger(fmt)
    secret = "s3cr3t-" + uuid.uuid4().hex
    logs.register_secret(secret)
    logger.info("connecting with %s", secret)
    logger.info(f"inline {secret} too")
    try:
        raise ValueError(f"driver said: bad password {secret!r}")
    except ValueError:
        logger.exception("probe failed")
    text = stream.getvalue()
    assert secret not in text
    assert text.count(logs.MASK) >= 3
    if fmt == "json":
        lines = _lines(stream)
        assert lines[0]["message"] == f"connecting with {logs.MASK}"
        assert "ValueError: driver said: bad password" in lines[2]["exception"]
    else:
        assert "Traceback" in text
        assert "ValueError" in text


def test_password_inside_a_url_is_masked_on_its_own() -> None:
    logger, stream = _logger("json")
    logs.register_secret("postgresql://payscope:pa%24%24word-x9@db:5432/payscope")
    logger.error('FATAL: password authentication failed for "pa$$word-x9"')
    logger.error("raw pa%24%24word-x9")
    first, second = _lines(stream)
    assert first["message"] == f'FATAL: password authentication failed for "{logs.MASK}"'
    assert second["message"] == f"raw {logs.MASK}"


def test_longest_value_masked_first_and_short_values_ignored() -> None:
    logs.register_secret("abcd")
    logs.register_secret("abcdefgh")
    logs.register_secret("xy")  # too short to mask safely: not registered (nor its base64 form)
    assert len(logs.SECRETS) == 4  # each value and its base64 form
    assert logs.SECRETS.mask("abcdefgh abcd xy") == f"{logs.MASK} {logs.MASK} xy"


def test_base64_forms_and_keyword_dsn_passwords_are_masked() -> None:
    logs.register_secret("host=db.internal port=5432 password=k3yw0rd-pass dbname=payscope")
    logs.register_secret("pcsk_live_0123456789")
    line = "response body: {'data': {'apiKey': 'cGNza19saXZlXzAxMjM0NTY3ODk='}} auth failed for k3yw0rd-pass"
    assert (
        logs.SECRETS.mask(line) == f"response body: {{'data': {{'apiKey': '{logs.MASK}'}}}} auth failed for {logs.MASK}"
    )


def test_the_kubernetes_client_never_logs_bodies_even_at_debug() -> None:
    root, rest = logging.getLogger(), logging.getLogger("kubernetes.client.rest")
    saved = (root.handlers[:], root.level, rest.level)
    try:
        logs.configure("debug", "json", io.StringIO())
        assert not rest.isEnabledFor(logging.DEBUG)  # it would log Secret bodies
        assert logging.getLogger("kubernetes.client").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        rest.setLevel(saved[2])


def test_text_format_keeps_the_line_and_appends_context() -> None:
    logger, stream = _logger("text")
    with logs.bind(namespace="ns", name="psd", pass_id="0a0b0c0d", system="redis"):
        logger.info("hello")
    line = stream.getvalue().strip()
    assert f"INFO {logger.name}: hello [ns/psd pass_id=0a0b0c0d system=redis]" in line


def test_configure_masks_records_of_any_logger_through_the_root() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        stream = io.StringIO()
        logs.configure("info", "json", stream)
        logs.register_secret("hunter2-hunter2")
        logging.getLogger("botocore.credentials").warning("found key hunter2-hunter2 in env")
        (line,) = _lines(stream)
        assert line["message"] == f"found key {logs.MASK} in env"
        assert line["logger"] == "botocore.credentials"
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.make_handler("yaml")  # type: ignore[arg-type]
