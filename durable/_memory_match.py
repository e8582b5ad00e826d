"""Which items a `Memory` search keeps, and which namespaces a listing keeps: LangGraph's ``InMemoryStore`` rules.

A filter maps top-level keys of an item's value to a value it must equal (a dict matches a sub-dict, a list
element by element) or to operators (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``); a namespace
pattern's ``"*"`` matches any one label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


def check_filter(filter: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    """The filter's (key, condition) pairs, its operators checked now (LangGraph checks them item by item)."""
    if filter is None:
        return []
    if not isinstance(filter, Mapping):
        raise ConfigurationError(f"filter={filter!r}: give a dict of key: value (or key: {{'$gt': 3}})")

    def check(condition: Any) -> None:
        if isinstance(condition, dict) and any(str(k).startswith("$") for k in condition):
            for op, operand in condition.items():
                if op not in OPERATORS:
                    raise ConfigurationError(f"filter operator {op!r}: use one of {', '.join(OPERATORS)}")
                if op in ("$gt", "$gte", "$lt", "$lte") and _number(operand) is None:
                    raise ConfigurationError(f"filter {{{op!r}: {operand!r}}}: compare with a number")
        elif isinstance(condition, dict):
            for sub in condition.values():
                check(sub)
        elif isinstance(condition, list | tuple):
            for sub in condition:
                check(sub)

    for condition in filter.values():
        check(condition)
    return list(filter.items())


def matches(value: dict[str, Any], conditions: list[tuple[str, Any]]) -> bool:
    return all(_compare(value.get(key), condition) for key, condition in conditions)


def _compare(found: Any, wanted: Any) -> bool:
    """LangGraph's ``InMemoryStore`` comparison: operators, sub-dicts, lists element-wise, else equality."""
    if isinstance(wanted, dict):
        if any(str(k).startswith("$") for k in wanted):
            return all(_apply(found, op, operand) for op, operand in wanted.items())
        return isinstance(found, dict) and all(_compare(found.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(found, list | tuple)
            and len(found) == len(wanted)
            and all(_compare(f, w) for f, w in zip(found, wanted, strict=True))
        )
    return bool(found == wanted)


def _apply(found: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(found == operand)
    if op == "$ne":
        return bool(found != operand)
    a, b = _number(found), _number(operand)
    if a is None or b is None:
        return False  # InMemoryStore raises TypeError here, for the first item without a number
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _number(x: Any) -> float | None:
    """``float(x)``, as LangGraph compares (a number, or a numeric string), or ``None``."""
    if x is None or isinstance(x, dict | list):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def ends(pattern: tuple[str, ...], namespace: tuple[str, ...], step: int = 1) -> bool:
    """Whether ``namespace`` starts (``step=1``) or ends (``-1``) with ``pattern``, ``"*"`` matching any label."""
    if len(namespace) < len(pattern):
        return False
    return all(p in ("*", n) for p, n in zip(pattern[::step], namespace[::step], strict=False))
