"""Recorded values across code changes: task versions, their converters, and values that no longer fit.

A workflow outlives the code that started it, so a value journaled last week is read by this week's code. Two
things can go wrong, and both are errors here, never a silent ``None`` or a half-built object:

* **The type changed.** A task declared ``@task(version=2, upgrade={1: convert})`` journals its values with a
  three-byte header naming the version that recorded them (``V``, then the version as two bytes; a value with
  no header was recorded before the task had versions: by version 1). On replay, a value recorded by an older
  version is passed through the converters from its version up, ``upgrade[n]`` turning a version-``n`` value
  into a version-``n + 1`` one, so a release adds one converter and keeps the others. A value from a version
  with no converter left, or from a *newer* version (a rollback), is a `RecordedValueError`.
* **The class changed under the pickle.** Unpickling restores an object's attributes as they were recorded, so
  a model or dataclass that gained a field comes back without it and fails later, far from the cause. A replayed
  model or dataclass is checked for the fields its class has now (`missing_fields`), and one lacking any is a
  `RecordedValueError` naming the thread, the key and the type.

The header sits inside the signed bytes, so a signature covers the version too; ``V`` is reserved among the
serializers' format tags for it.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import ConfigurationError, RecordedValueError

TAG = b"V"
_HEADER = struct.Struct(">cH")
_MAX = 0xFFFF

_Blob = TypeVar("_Blob", bytes, memoryview)
Upgrades = Mapping[int, Callable[[Any], Any]]


def checked(version: int | None, upgrade: Upgrades | None) -> tuple[int | None, dict[int, Callable[[Any], Any]]]:
    """``@task(version=, upgrade=)`` as given, refused with a `ConfigurationError` that says what fits."""
    if version is None:
        if upgrade:
            raise ConfigurationError("@task(upgrade=...) converts values of older versions: give version= too")
        return None, {}
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= _MAX:
        raise ConfigurationError(f"@task(version={version!r}): use a whole number from 1 to {_MAX}")
    steps = dict(upgrade or {})
    for old, convert in steps.items():
        if isinstance(old, bool) or not isinstance(old, int) or not 1 <= old < version:
            raise ConfigurationError(
                f"@task(upgrade={{{old!r}: ...}}): a key is the version a value was recorded by, "
                f"from 1 to {version - 1} (upgrade[n] turns a version-n value into a version-n+1 one)"
            )
        if not callable(convert):
            raise ConfigurationError(f"@task(upgrade={{{old}: {convert!r}}}): pass a function of the old value")
    return version, steps


def stamp(version: int, inner: bytes) -> bytes:
    """A value's serialized bytes with the header naming the task version that recorded them."""
    return _HEADER.pack(TAG, version) + inner


def peel(inner: _Blob) -> tuple[int, _Blob]:
    """(the task version that recorded a value, its serialized bytes); 1 when it carries no header."""
    if inner[:1] != TAG:
        return 1, inner
    if len(inner) < _HEADER.size:
        return 0, inner  # a truncated header: no version reads it, so `upgraded` refuses it
    return _HEADER.unpack_from(inner)[1], inner[_HEADER.size :]


def upgraded(value: Any, recorded: int, version: int, steps: Mapping[int, Callable[[Any], Any]], where: Where) -> Any:
    """``value`` as recorded by ``recorded``, made into what version ``version`` returns (each step in turn)."""
    if recorded > version or recorded < 1:
        raise where.error(
            type(value).__name__,
            f"it was recorded by version {recorded} of the task, and this code has version {version}",
            f"deploy code with version {recorded} or later of the task, or fork the thread before this key",
        )
    for old in range(recorded, version):
        convert = steps.get(old)
        if convert is None:
            raise where.error(
                type(value).__name__,
                f"it was recorded by version {recorded} of the task and nothing upgrades a version-{old} value",
                f"add upgrade={{{old}: convert}} to the task (convert turns a version-{old} value into a "
                f"version-{old + 1} one)",
            )
        try:
            value = convert(value)
        except Exception as exc:
            raise where.error(
                type(value).__name__,
                f"upgrade[{old}] raised {type(exc).__name__}: {exc}",
                "fix the converter and resume again",
            ) from exc
    return value


class Where:
    """The journal slot a value was read from, for the error that says it cannot be read.

    A plain class, not a dataclass: it is made at import with the engine, where a dataclass costs a millisecond."""

    __slots__ = ("key", "task", "thread_id")

    def __init__(self, thread_id: str, key: str, task: str) -> None:
        self.thread_id, self.key, self.task = thread_id, key, task

    def error(self, type_name: str, reason: str, advice: str = "") -> RecordedValueError:
        return RecordedValueError(self.thread_id, self.key, self.task, type_name, reason, advice)


# -- the fields a class has now ---------------------------------------------------------------------------

_fields_of: dict[type, tuple[str, ...] | None] = {}


def missing_fields(value: Any) -> tuple[str, ...]:
    """The fields ``value``'s class declares now that ``value`` lacks (a model or dataclass unpickled from
    bytes recorded before the field existed); ``()`` for any other value. Asked of every replayed value, so
    what a class declares is looked up once per class (classes made on the fly are not all kept)."""
    cls = type(value)
    try:
        names = _fields_of[cls]
    except KeyError:
        if len(_fields_of) >= 4096:
            _fields_of.clear()
        names = _fields_of[cls] = _declared(cls)
    if names is None:
        return ()
    return tuple(n for n in names if not hasattr(value, n))


def _declared(cls: type) -> tuple[str, ...] | None:
    """The fields every instance of ``cls`` has once built (``None``: nothing to check). A class opts out with
    ``__durable_check_fields__ = False`` (one whose instances are made without some fields on purpose)."""
    if getattr(cls, "__durable_check_fields__", True) is False:
        return None
    fields = getattr(cls, "__pydantic_fields__", None)  # a Pydantic model
    if isinstance(fields, dict) and fields:
        return tuple(fields)
    if dataclasses.is_dataclass(cls):
        # A field with init=False is set when the class's code gets to it, so it may rightly be missing.
        return tuple(f.name for f in dataclasses.fields(cls) if f.init) or None
    return None


def check_fields(value: Any, where: Where) -> None:
    """Refuse a replayed model or dataclass that lacks fields its class now declares."""
    missing = missing_fields(value)
    if missing:
        cls = type(value)
        raise where.error(
            f"{cls.__module__}.{cls.__qualname__}",
            f"it was recorded without the field(s) {', '.join(missing)} that the class declares now",
            "give the task a version and an upgrade for the old values (@task(version=2, upgrade={1: convert}))"
            + ("" if hasattr(cls, "__pydantic_fields__") else ", or give the new fields defaults")
            + " (a class whose instances lack fields on purpose sets __durable_check_fields__ = False)",
        )
