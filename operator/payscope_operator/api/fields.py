"""Building blocks of the API types: the shared base model, validated field types, rules.

Why this module exists: every name the operator later pastes into SQL, Cypher, an S3
or Pinecone call, or a Kubernetes lookup is constrained here, once, by a pattern that
pydantic and the kube-apiserver (Go RE2) enforce identically. The pattern constants
are public so that the backends re-check values with ``re.fullmatch`` before use.
Cross-field rules are declared once as :class:`Rule` objects that carry both the CEL
expression (rendered into the CRD as ``x-kubernetes-validations``) and the equivalent
Python predicate (run by pydantic), so admission and the models agree.

What it must not do: know about any particular section of the spec, import other
``api`` modules, or talk to anything outside the process.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

# Patterns are anchored, RE2- and Python-compatible (no look-around); use re.fullmatch.
SQL_IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
"""A lower-case, unquoted Postgres identifier (table, column, schema, role): at most 63 bytes."""
SQL_ORDER_BY_PATTERN = r"^[a-z_][a-z0-9_]{0,62}( (ASC|DESC))?$"
"""A column optionally followed by `` ASC`` or `` DESC`` (TimescaleDB compress_orderby)."""
SESSION_VARIABLE_PATTERN = r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$"
"""A custom Postgres setting ``prefix.name``, e.g. ``app.current_bank_id``."""
NEO4J_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
"""A Neo4j label or property name that needs no quoting (still backtick it)."""
NEO4J_DATABASE_PATTERN = r"^[a-z][a-z0-9.-]{2,62}$"
"""A Neo4j database name: 3-63 characters, lower case, starts with a letter."""
BUCKET_NAME_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
"""An S3 bucket name: 3-63 of lower case, digits, dots, hyphens; see also BUCKET_NAME_RULES."""
PINECONE_INDEX_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?$"
"""A Pinecone index name: at most 45 lower-case alphanumerics or hyphens."""
KUBE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Kubernetes object name (DNS-1123 subdomain), at most 253 characters."""
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 (a pattern, not a secret)
"""A key of a Secret's data, at most 253 characters."""
DURATION_PATTERN = r"^[1-9][0-9]*(s|m|h|d)$"
"""A positive whole number of seconds, minutes, hours or days: ``60s``, ``7d``."""
LOCK_TIMEOUT_PATTERN = r"^[1-9][0-9]{0,3}(ms|s)$"
"""A short wait for a lock: whole milliseconds or seconds, ``200ms``, ``1s`` (at most 5s, see LockTimeout)."""
MAX_LOCK_TIMEOUT_MS = 5000
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
"""A calendar date ``YYYY-MM-DD``."""
CHECK_ID_PATTERN = r"^[A-G]\.[a-z0-9_-]+\.[a-z0-9_-]+$"
"""An audit check id ``<dimension letter>.<area>.<check>``, e.g. ``B.postgres.rls_forced``."""
WAIVER_TARGET_PATTERN = r"^[A-G]\.(\*|[a-z0-9_-]+\.(\*|[a-z0-9_-]+))$"
"""What a waiver names: one check id, every check of an area (``B.neo4j.*``) or a whole dimension (``D.*``)."""
BANK_ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$"
"""A tenant (bank) id as it appears in JWT claims, ``X-Bank-Id`` and the session variable."""
HTTP_URL_PATTERN = r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[!-~]*)?$"
"""An http(s) URL without user info (credentials belong in Secrets)."""
NEO4J_URI_PATTERN = r"^(bolt|neo4j)(\+s|\+ssc)?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$"
"""A Bolt or Neo4j routing URI without user info or path."""
PRINTABLE_PATTERN = r"^[!-~]+$"
"""Printable ASCII without spaces (JWT issuer and audience, tokens, versions)."""
REGION_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$"
"""A cloud region such as ``us-east-1`` or ``eastus2``."""
REDIS_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""A Redis key or Celery queue name."""

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> timedelta:
    """Parse a spec duration (``60s``, ``15m``, ``12h``, ``400d``) into a timedelta.

    Raises ValueError for anything that does not match DURATION_PATTERN.
    """
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"not a duration like 60s, 15m, 12h or 7d: {value!r}")
    return timedelta(seconds=int(value[:-1]) * _DURATION_UNITS[value[-1]])


def parse_lock_timeout(value: str) -> timedelta:
    """Parse a lock timeout (``200ms``, ``1s``) into a timedelta; ValueError past LOCK_TIMEOUT_PATTERN."""
    if not re.fullmatch(LOCK_TIMEOUT_PATTERN, value):
        raise ValueError(f"not a lock timeout like 500ms or 1s: {value!r}")
    if value.endswith("ms"):
        return timedelta(milliseconds=int(value[:-2]))
    return timedelta(seconds=int(value[:-1]))


def cel_duration_seconds(expr: str) -> str:
    """The CEL expression computing the seconds of a duration string held in ``expr``.

    CEL's ``duration()`` knows no days, so the CRD computes seconds by hand.
    """
    number = f"int({expr}.substring(0, size({expr}) - 1))"
    unit = f"({expr}.endsWith('d') ? 86400 : {expr}.endsWith('h') ? 3600 : {expr}.endsWith('m') ? 60 : 1)"
    return f"{number} * {unit}"


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) or (isinstance(value, str) and re.fullmatch(DATE_PATTERN, value)):
        return value
    raise PydanticCustomError("date_format", "expected a date YYYY-MM-DD")


def _violation(message: str, loc: tuple[str | int, ...], value: Any) -> ValidationError:
    return ValidationError.from_exception_data(
        "PayScopeDeployment",
        [InitErrorDetails(type=PydanticCustomError("cel_rule", message), loc=loc, input=value)],
    )


@dataclass(frozen=True)
class Rule:
    """One validation rule, both as CEL for the CRD and as a Python predicate.

    On a model (listed in its ``rules``), ``holds`` receives the model instance and
    ``field_path`` (CEL ``fieldPath``, e.g. ``.serverless``) names the field blamed by
    both the apiserver and pydantic. As ``Annotated`` metadata on a field type,
    ``holds`` receives the field value.
    """

    cel: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str = ""
    reason: str = ""  # FieldValueInvalid (default) | FieldValueRequired | FieldValueForbidden | FieldValueDuplicate

    def to_schema(self) -> dict[str, str]:
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        if self.reason:
            entry["reason"] = self.reason
        return entry

    def loc(self) -> tuple[str, ...]:
        return tuple(part for part in self.field_path.split(".") if part)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def check(value: Any) -> Any:
            if not self.holds(value):
                raise _violation(self.message, self.loc(), value)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("x-kubernetes-validations", []).append(self.to_schema())
        return json_schema


@functools.cache
def _aliases(model: type[BaseModel]) -> dict[str, str]:
    """Wire name -> attribute name of a model's fields (models are classes: fixed once defined)."""
    return {info.alias or name: name for name, info in model.model_fields.items()}


@dataclass(frozen=True)
class ListKeys:
    """Marks a list as a map keyed by the given wire field names (``x-kubernetes-list-type: map``).

    Pydantic rejects a duplicate key at the duplicate's index, as the apiserver does.
    ``keys == ()`` marks a list of scalars as a set (``x-kubernetes-list-type: set``).
    """

    keys: tuple[str, ...] = ()

    def _key(self, item: Any) -> Any:
        if not self.keys:
            return item
        model: type[BaseModel] = type(item)
        by_alias = _aliases(model)
        return tuple(getattr(item, by_alias[key]) for key in self.keys)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def check(items: Sequence[Any]) -> Sequence[Any]:
            seen: list[Any] = []
            for index, item in enumerate(items):
                key = self._key(item)
                if key in seen:
                    raise _violation(f"duplicate entry {key!r}", (index,), key)
                seen.append(key)
            return items

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if self.keys:
            json_schema["x-kubernetes-list-type"] = "map"
            json_schema["x-kubernetes-list-map-keys"] = list(self.keys)
        else:
            json_schema["x-kubernetes-list-type"] = "set"
        return json_schema


def to_camel(name: str) -> str:
    """snake_case to lowerCamelCase; unlike pydantic's to_camel, ``neo4j`` stays ``neo4j``."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _add_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    rules: tuple[Rule, ...] = getattr(cls, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.to_schema() for rule in rules]


class SpecModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, frozen, strict keys.

    Subclasses list cross-field rules in ``rules``; they land in the model's JSON schema
    as ``x-kubernetes-validations`` and are checked after pydantic validation.
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        json_schema_extra=_add_rules,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> SpecModel:
        for rule in type(self).rules:
            if not rule.holds(self):
                raise _violation(rule.message, rule.loc(), None)
        return self


def _pattern(pattern: str, max_length: int) -> StringConstraints:
    return StringConstraints(pattern=pattern, max_length=max_length)


SqlIdentifier = Annotated[str, _pattern(SQL_IDENTIFIER_PATTERN, 63)]
SqlOrderBy = Annotated[str, _pattern(SQL_ORDER_BY_PATTERN, 68)]
SessionVariable = Annotated[str, _pattern(SESSION_VARIABLE_PATTERN, 127)]
Neo4jName = Annotated[str, _pattern(NEO4J_NAME_PATTERN, 64)]
Neo4jDatabase = Annotated[str, _pattern(NEO4J_DATABASE_PATTERN, 63)]
PineconeIndexName = Annotated[str, _pattern(PINECONE_INDEX_PATTERN, 45)]
KubeName = Annotated[str, _pattern(KUBE_NAME_PATTERN, 253)]
SecretKey = Annotated[str, _pattern(SECRET_KEY_PATTERN, 253)]
Duration = Annotated[str, _pattern(DURATION_PATTERN, 10)]
LockTimeout = Annotated[
    str,
    _pattern(LOCK_TIMEOUT_PATTERN, 6),
    Rule(
        f"self.endsWith('ms') ? int(self.substring(0, size(self) - 2)) <= {MAX_LOCK_TIMEOUT_MS}"
        f" : int(self.substring(0, size(self) - 1)) * 1000 <= {MAX_LOCK_TIMEOUT_MS}",
        "lockTimeout must be at most 5s",
        lambda v: parse_lock_timeout(v) <= timedelta(milliseconds=MAX_LOCK_TIMEOUT_MS),
    ),
]
"""How long a DDL statement may wait for its lock: at most 5s, since every later reader queues behind it."""
CheckId = Annotated[str, _pattern(CHECK_ID_PATTERN, 128)]
WaiverTarget = Annotated[str, _pattern(WAIVER_TARGET_PATTERN, 128)]
BankId = Annotated[str, _pattern(BANK_ID_PATTERN, 64)]
HttpUrl = Annotated[str, _pattern(HTTP_URL_PATTERN, 2048)]
Neo4jUri = Annotated[str, _pattern(NEO4J_URI_PATTERN, 512)]
Token = Annotated[str, _pattern(PRINTABLE_PATTERN, 256)]
Region = Annotated[str, _pattern(REGION_PATTERN, 32)]
RedisKey = Annotated[str, _pattern(REDIS_KEY_PATTERN, 128)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1024)]

BUCKET_NAME_RULES = (
    Rule("!self.contains('..')", "bucket names must not contain two adjacent dots", lambda v: ".." not in v),
    Rule(
        "!self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')",
        "bucket names must not look like an IP address",
        lambda v: not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", v),
    ),
    Rule(
        "!self.startsWith('xn--') && !self.startsWith('sthree-') && !self.endsWith('-s3alias')"
        " && !self.endsWith('--ol-s3')",
        "bucket names must not use a prefix or suffix reserved by S3",
        lambda v: not v.startswith(("xn--", "sthree-")) and not v.endswith(("-s3alias", "--ol-s3")),
    ),
)
BucketName = Annotated[
    str, _pattern(BUCKET_NAME_PATTERN, 63), BUCKET_NAME_RULES[0], BUCKET_NAME_RULES[1], BUCKET_NAME_RULES[2]
]

# Strict numbers and booleans: the apiserver never coerces "10" or "true", neither do we.
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]

IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN, "maxLength": 10}),
]
"""A calendar date written ``YYYY-MM-DD``; a ``datetime.date`` in Python."""


class SecretKeyRef(SpecModel):
    """A key of a Secret in the PayScopeDeployment's own namespace."""

    name: KubeName = Field(description="Name of the Secret, in the PayScopeDeployment's namespace.")
    key: SecretKey = Field(description="Key within the Secret's data.")
