"""What an answer must look like, who gave it and when, and how long a question waits.

Three things `interrupt(..., response_schema=, timeout=, default=)` and `Command(resume=, by=)` add to a question:

- **Schemas.** A ``response_schema`` (a Pydantic model, dataclass, ``TypedDict``, any type Pydantic's
  ``TypeAdapter`` takes, or a JSON Schema ``dict``) is recorded with the pending interrupt as a JSON Schema.
  A resume checks each answer against that recorded schema *before anything is journaled*, in whatever
  process answers (the application, the CLI, the web console), none of which needs the workflow's code. When
  the run reaches the question again, a type schema turns the answer into an instance (LangGraph's behaviour);
  a check only Python can make (a Pydantic validator) fails there, and the question is asked anew.
- **Records.** An answer's journal row carries who gave it, when, and whether a timeout gave it, in a small
  fixed header signed with the value (the row's digest is `RECORD`, which is signed too). The header is plain
  bytes, never a pickle, so a tool without the key or the workflow's classes can still say who answered.
- **Deadlines.** ``timeout`` is seconds or a ``timedelta``; the deadline is fixed when the question is first
  asked and kept across replays and crashes (it is read back from the run's recorded interrupts).

Stored schemas are data, not code: they are checked with ``jsonschema``, which resolves no remote ``$ref``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from collections.abc import Mapping
from datetime import timedelta
from functools import lru_cache
from typing import Any

from .errors import ConfigurationError, SerializationError, UsageError

RECORD = b"answer/1"  # the digest of an answer row that carries a record header (rows before it carry none)
# version 1, when (seconds since the epoch), flags (timed out 1, defaulted 2, has "by" 4), the length of "by" in UTF-8
_HEAD = struct.Struct(">BdBH")


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """An answer as the journal holds it: the value, who gave it, when, and whether the deadline gave it."""

    value: Any
    by: str | None = None
    at: float | None = None
    timed_out: bool = False
    defaulted: bool = False  # a timeout that had a default: ``value`` is it (a timeout without one raises)


def record(value_bytes: bytes, by: str | None, at: float, timed_out: bool = False, defaulted: bool = False) -> bytes:
    """An answer row's inner bytes: the header, then the value's serialized bytes as the serializer wrote them."""
    name = b"" if by is None else by.encode()
    flags = timed_out | defaulted << 1 | (by is not None) << 2
    return _HEAD.pack(1, at, flags, len(name)) + name + value_bytes


def split(inner: bytes) -> tuple[Answer, bytes]:
    """The header of an answer row (its value left ``None``) and the value's serialized bytes."""
    try:
        version, at, flags, size = _HEAD.unpack_from(inner)
        end = _HEAD.size + size
        if version != 1 or flags > 7 or len(inner) < end or not math.isfinite(at):
            raise ValueError(f"version {version}, flags {flags}, {len(inner)} bytes")
        by = inner[_HEAD.size : end].decode() if flags & 4 else None
    except (struct.error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise SerializationError("an answer's record", "bytes", f"its header is damaged ({exc})", reading=True) from exc
    return Answer(None, by, at, bool(flags & 1), bool(flags & 2)), inner[end:]


def read_answer(codec: Any, inner: bytes, row: Any) -> Answer:
    """An answer row's `Answer`, its value read by ``codec`` (rows from before records carry the value alone)."""
    what = f"the answer to interrupt {row.key}"
    if row.digest != RECORD:
        return Answer(codec.load_plain(inner, what), None, row.finished_at)
    head, rest = split(inner)
    return dataclasses.replace(head, value=codec.load_plain(rest, what))


def check_by(by: Any) -> str | None:
    if by is None or (isinstance(by, str) and by.strip() and len(by) <= 200):
        return by
    raise UsageError(f"Command(by={by!r}): give who answered as non-empty text of at most 200 characters, or None")


def seconds(timeout: float | timedelta) -> float:
    """``timeout=`` as a positive, finite number of seconds."""
    value = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"interrupt(timeout={timeout!r}): give a positive number of seconds or a timedelta")
    return float(value)


# -- schemas ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Schema:
    """A ``response_schema`` as given (``adapter``: a Pydantic ``TypeAdapter``, or ``None`` for a JSON Schema
    dict) and as recorded (``json``)."""

    json: dict[str, Any]
    adapter: Any = None

    def convert(self, value: Any, interrupt_id: str) -> Any:
        """The answer as the type asks for it (an instance of a model or dataclass); `Rejected` if it does not fit."""
        if self.adapter is None:
            return value
        from pydantic import ValidationError

        try:
            return self.adapter.validate_python(value)
        except ValidationError as exc:
            raise Rejected(
                [
                    {"interrupt": interrupt_id, "path": ".".join(map(str, e["loc"])), "message": e["msg"]}
                    for e in exc.errors()
                ]
            ) from None


class Rejected(Exception):
    """Problems with an answer, in `AnswerRejectedError`'s shape (internal: that error names the thread)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def schema_of(given: Any) -> Schema:
    """The `Schema` of an ``interrupt(response_schema=...)`` argument (each is checked once per process: a replay
    meets the same question again and again)."""
    _jsonschema()  # a missing validator should show where the question is asked, not where it is answered
    if isinstance(given, Mapping):
        try:
            text = json.dumps(given, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"response_schema: a JSON Schema dict must be JSON ({exc})") from None
        try:
            _validator(text)
        except _BadSchema as bad:
            raise UsageError(f"response_schema {bad}") from None
        return Schema(json.loads(text))  # a copy of its own: the caller may change the dict it gave
    try:
        return _typed(given)
    except TypeError:  # unhashable: not a type
        raise UsageError(
            f"response_schema={given!r}: give a Pydantic model, a dataclass, a TypedDict (any type Pydantic's "
            f"TypeAdapter takes) or a JSON Schema dict"
        ) from None


@lru_cache(maxsize=256)
def _typed(given: Any) -> Schema:
    try:
        from pydantic import PydanticSchemaGenerationError, PydanticUserError, TypeAdapter
    except ImportError:
        raise ConfigurationError(
            "a typed response_schema needs Pydantic: pip install 'durable-exec[schema]' (or give a JSON Schema dict)"
        ) from None
    try:
        adapter = TypeAdapter(given)
        return Schema(adapter.json_schema(), adapter)
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        raise UsageError(
            f"response_schema={given!r} is not a type Pydantic can validate ({exc}): give a Pydantic model, a "
            f"dataclass, a TypedDict or a JSON Schema dict"
        ) from None


def check(schema: Mapping[str, Any], value: Any, interrupt_id: str) -> list[dict[str, str]]:
    """The problems of ``value`` (JSON data: see `plain`) against a recorded JSON Schema (empty: it fits)."""
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
        found = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    except Exception as exc:  # a damaged schema, or a $ref it will not fetch: nothing fits it
        return [{"interrupt": interrupt_id, "path": "", "message": f"the recorded schema cannot be used: {exc}"}]
    return [
        {"interrupt": interrupt_id, "path": ".".join(map(str, e.absolute_path)), "message": e.message} for e in found
    ]


class _BadSchema(Exception):
    pass


@lru_cache(maxsize=256)
def _validator(text: str) -> Any:
    """A validator for the JSON Schema written as ``text``, checked first (`_BadSchema` says why it is not one)."""
    jsonschema = _jsonschema()
    schema = json.loads(text)
    if not isinstance(schema, dict):
        raise _BadSchema(f"{schema!r} is not a JSON Schema object")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise _BadSchema(f"is not a valid JSON Schema: {exc.message}") from None
    return cls(schema)


def plain(value: Any) -> Any:
    """A model or dataclass answer (or a date, a UUID...) as the JSON data a schema describes, the shape a form or an
    API sends; what cannot be made JSON is left as it is, for the schema to refuse."""
    try:
        from pydantic_core import to_jsonable_python
    except ImportError:
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
    try:
        return to_jsonable_python(value)
    except Exception:
        return value


@lru_cache(maxsize=1)
def _jsonschema() -> Any:
    try:
        import jsonschema  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigurationError(
            "response_schema needs the jsonschema package to check answers: pip install 'durable-exec[schema]'"
        ) from None
    return jsonschema
