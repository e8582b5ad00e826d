"""`durable._digest.digest_call`: the same arguments give the same digest, in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durable._digest import digest_call

REPO_ROOT = Path(__file__).resolve().parents[2]

# Computed here and in subprocesses with other hash seeds; printed as JSON lines.
CROSS_PROCESS_SCRIPT = """
import json, sys
from durable._digest import digest_call
words = [f"word-{i}" for i in range(40)]
cases = {
    "set": ((set(words),), {}),
    "frozenset": ((frozenset(words),), {}),
    "nested": (({"tags": set(words[:10]), "groups": [frozenset(words[10:20]), {"x", "y", "z"}]},), {}),
    "kwargs": ((), {"labels": set(words[20:]), "n": 3}),
    "dict_from_set": (({w: len(w) for w in set(words)},), {}),
}
print(json.dumps({
    "digests": {name: digest_call(*case).hex() for name, case in cases.items()},
    "set_order": list(set(words)),
}))
"""


def digests_in_subprocess(seed: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CROSS_PROCESS_SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def two_processes() -> tuple[dict[str, Any], dict[str, Any]]:
    a, b = digests_in_subprocess("1"), digests_in_subprocess("2")
    # Otherwise the test below proves nothing: the two processes must iterate sets differently.
    assert a["set_order"] != b["set_order"]
    return a, b


@pytest.mark.parametrize("case", ["set", "frozenset", "nested", "kwargs"])
@pytest.mark.subprocess
def test_sets_of_strings_digest_equally_across_hash_seeds(two_processes: Any, case: str) -> None:
    """Sets of strings (alone, nested, or as keyword arguments) digest the same whatever PYTHONHASHSEED is."""
    a, b = two_processes
    assert a["digests"][case] == b["digests"][case]


@pytest.mark.subprocess
def test_a_dict_built_from_a_set_digests_equally_across_hash_seeds(two_processes: Any) -> None:
    """Equal dicts built in another insertion order (here from iterating a set) digest the same in two processes."""
    a, b = two_processes
    assert a["digests"]["dict_from_set"] == b["digests"]["dict_from_set"]


def test_equal_dicts_digest_equally_whatever_their_insertion_order() -> None:
    """Two equal dicts give the same digest even when their keys were inserted in another order."""
    assert digest_call(({"a": 1, "b": 2},), {}) == digest_call(({"b": 2, "a": 1},), {})


def test_no_arguments_digest_to_empty_bytes() -> None:
    """A call without arguments has the empty digest."""
    assert digest_call((), {}) == b""


def test_equal_arguments_digest_equally_and_different_ones_differently() -> None:
    """The digest depends on the arguments' values, not on the objects holding them."""
    args = ([1, 2.5, "x", b"y", None, True], {"k": (1, 2)})
    same = ([1, 2.5, "x", b"y", None, True], {"k": (1, 2)})
    assert digest_call(args, {}) == digest_call(same, {})
    assert digest_call(args, {}) != digest_call(([1, 2.5, "x", b"y", None, False], {"k": (1, 2)}), {})


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, True),
        (1, 1.0),
        (1, "1"),
        ("ab", b"ab"),
        ([1, 2], (1, 2)),
        ([[1], 2], [1, [2]]),
        (["ab", "c"], ["a", "bc"]),
        (None, "None"),
        ({1, 2}, [1, 2]),
    ],
    ids=["int-bool", "int-float", "int-str", "str-bytes", "list-tuple", "nesting", "split", "none-str", "set-list"],
)
def test_values_of_different_types_or_shapes_digest_differently(left: Any, right: Any) -> None:
    """Values that differ in type or structure never share a digest."""
    assert digest_call((left,), {}) != digest_call((right,), {})


def test_keyword_order_does_not_matter_but_positional_versus_keyword_does() -> None:
    """Keyword arguments digest the same in any order; passing a value by keyword is a different call."""
    assert digest_call((), {"a": 1, "b": 2}) == digest_call((), {"b": 2, "a": 1})
    assert digest_call((1,), {}) != digest_call((), {"a": 1})


@dataclass
class Point:
    x: int
    y: int


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: int, b: int) -> None:
        self.a, self.b = a, b


def test_objects_digest_by_type_and_attributes() -> None:
    """Objects with equal attributes digest equally (no memory addresses); other attributes differ."""
    assert digest_call((Point(1, 2),), {}) == digest_call((Point(1, 2),), {})
    assert digest_call((Point(1, 2),), {}) != digest_call((Point(2, 1),), {})
    assert digest_call((Slotted(1, 2),), {}) == digest_call((Slotted(1, 2),), {})
    assert digest_call((Slotted(1, 2),), {}) != digest_call((Slotted(1, 3),), {})
    assert digest_call((object(),), {}) == digest_call((object(),), {})


def test_values_that_cannot_be_digested_stably_are_not_checked() -> None:
    """Objects with hidden state or very deep nesting give ``None`` ("not checked"), never a false digest."""
    assert digest_call((threading.Lock(),), {}) is None
    deep: list[Any] = []
    for _ in range(30):
        deep = [deep]
    assert digest_call((deep,), {}) is None
    loop: list[Any] = []
    loop.append(loop)
    assert digest_call((loop,), {}) is None
