"""Log lines people and machines can read, with every resolved secret value masked.

``configure`` puts one handler on the root logger, writing text (the default) or
one JSON object per line (``--log-format json``), and installs two filters on it
and on kopf's Event poster:

- the *context* filter stamps each record with what ``bind`` holds in the current
  task (the resource's ``namespace``/``name``, ``pass_id``, ``system``, ``check``),
  so every line a pass emits carries them, kopf's and the drivers' lines included;
  kopf's own object logger supplies namespace/name where nothing is bound;
- the *masking* filter replaces every value registered in ``SECRETS`` (the
  Secret values ``reconcile.secrets`` resolves, their base64 form and the passwords
  inside connection strings) in the record's final message, exception text and
  stack, whatever logger emitted it, in both formats.

The Kubernetes client's REST logger stays at INFO even under ``--log-level debug``
(``QUIET_LOGGERS``): it would print every response body, Secrets included.

``SECRETS`` is process-wide on purpose: logging itself is process-wide, and a
driver's thread or kopf's poster must be masked without being handed anything.
It must not import anything of the package (every layer logs through it), and it
keeps secret values only in memory, for matching; it never writes them anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import datetime
import json
import logging
import re
import secrets
import sys
import threading
import types
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TextIO

Format = Literal["text", "json"]
FORMATS: tuple[Format, ...] = ("text", "json")
MASK = "***"
CONTEXT_KEYS = ("namespace", "name", "pass_id", "system", "check")
"""The context fields, in the order they are written."""

_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "payscope_log_context", default=types.MappingProxyType({})
)
_RECORD_ATTR = "payscope_context"
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*'?([^'\s]+)")
"""The password of a libpq keyword DSN (``host=db password=s3cret``)."""
QUIET_LOGGERS = ("kubernetes.client.rest",)
"""Loggers kept at INFO or above: at DEBUG the Kubernetes client logs whole response bodies, Secrets included."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SecretValues:
    """The secret values to mask; thread-safe, bounded, longest match first.

    Values shorter than ``min_length`` are not registered: masking them would garble
    ordinary words in every line, and such a value protects nothing anyway. A URL's
    password (a DSN, a Redis URL) and a libpq keyword DSN's ``password=`` are registered
    on their own too, since drivers quote them without the rest; so is the value's
    base64 form, which is how the Kubernetes API carries a Secret (a client that logs
    response bodies would print it).
    """

    def __init__(self, *, min_length: int = 4, capacity: int = 4096) -> None:
        self.min_length = min_length
        self.capacity = capacity
        self._lock = threading.Lock()
        self._values: dict[str, None] = {}
        self._ordered: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        """Register a resolved secret value (and the password inside it, if it is a URL)."""
        candidates = [value]
        if len(value) >= self.min_length:
            candidates.append(base64.b64encode(value.encode()).decode())
        with contextlib.suppress(ValueError):
            password = urllib.parse.urlsplit(value).password
            if password:
                candidates += [password, urllib.parse.unquote(password)]
        candidates += _KEYWORD_PASSWORD.findall(value)
        with self._lock:
            for candidate in candidates:
                if len(candidate) >= self.min_length and candidate not in self._values:
                    self._values[candidate] = None
            while len(self._values) > self.capacity:
                self._values.pop(next(iter(self._values)))
            self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._ordered = ()

    def __len__(self) -> int:
        return len(self._ordered)

    def mask(self, text: str) -> str:
        """``text`` with every registered value replaced by ``***``."""
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text


SECRETS = SecretValues()


def register_secret(value: str) -> None:
    """Mask ``value`` in every log line from now on (called where Secrets are resolved)."""
    SECRETS.add(value)


@contextlib.contextmanager
def bind(**fields: str) -> Iterator[None]:
    """Add context fields to every record logged in this block (and in tasks it starts)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind_task(**fields: str) -> None:
    """Add context fields for the rest of the current asyncio task.

    Each task runs in its own copy of the context, so the fields end with the task
    and never leak into the code that started it; use ``bind`` anywhere else.
    """
    _CONTEXT.set({**_CONTEXT.get(), **fields})


def new_pass_id() -> str:
    """A short id that tells one pass's lines from another's."""
    return secrets.token_hex(4)


def context_of(record: logging.LogRecord) -> dict[str, str]:
    """The context fields stamped on ``record`` (empty before the context filter ran)."""
    found = getattr(record, _RECORD_ATTR, None)
    return dict(found) if isinstance(found, dict) else {}


class ContextFilter(logging.Filter):
    """Stamp the current ``bind`` context (or kopf's object reference) on each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, _RECORD_ATTR):
            return True  # stamped by an earlier handler: the emitting task's context wins
        context = dict(_CONTEXT.get())
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping) and "name" not in context:
            for key in ("namespace", "name"):
                if ref.get(key):
                    context[key] = str(ref[key])
        setattr(record, _RECORD_ATTR, context)
        return True


class MaskingFilter(logging.Filter):
    """Replace registered secret values in the record's message, exception and stack text."""

    def __init__(self, values: SecretValues | None = None) -> None:
        super().__init__()
        self.values = SECRETS if values is None else values

    def filter(self, record: logging.LogRecord) -> bool:
        if not len(self.values):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the handler's error to report, not ours
            return True
        record.msg, record.args = self.values.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.values.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.values.mask(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """The familiar one-line text, with the context appended in brackets."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = context_of(record)
        if not context:
            return line
        where = "/".join(context[k] for k in ("namespace", "name") if context.get(k))
        rest = " ".join(f"{k}={context[k]}" for k in CONTEXT_KEYS[2:] if context.get(k))
        suffix = " ".join(part for part in (where, rest) if part)
        first, sep, tail = line.partition("\n")  # keep a traceback below the line it belongs to
        return f"{first} [{suffix}]{sep}{tail}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in sorted(context_of(record).items(), key=_context_order) if v})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def _context_order(item: tuple[str, str]) -> int:
    return CONTEXT_KEYS.index(item[0]) if item[0] in CONTEXT_KEYS else len(CONTEXT_KEYS)


def make_handler(fmt: Format, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler in ``fmt`` with the context and masking filters."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(MaskingFilter())
    return handler


def configure(level: str, fmt: Format, stream: TextIO | None = None) -> logging.Handler:
    """Route every log record through one handler in ``fmt``; mask secrets in kopf's Events too."""
    root = logging.getLogger()
    handler = make_handler(fmt, stream)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    for poster in logging.getLogger("kopf.objects").handlers:  # kopf's K8sPoster turns log lines into Events
        if not any(isinstance(f, MaskingFilter) for f in poster.filters):
            poster.addFilter(MaskingFilter())
    return handler
