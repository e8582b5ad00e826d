"""`RedisStore`'s drivers: one operation of `_redis_ops`, run by redis-py's blocking client or by its asyncio client.

A script is called by its SHA (``EVALSHA``) and loaded when the server does not have it (a new server, or one
restarted or flushed since). A durable write and its ``WAIT``/``WAITAOF`` go in one pipeline: the wait confirms the
writes of its own connection only.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

from . import _redis_kv as kv
from . import _redis_ops as ops
from ._redis_lua import PRELUDE, STANDALONE
from ._redis_lua import SCRIPTS as _STORE_SCRIPTS

T = TypeVar("T")

SOURCES = {name: ("" if name in STANDALONE else PRELUDE) + body for name, body in _STORE_SCRIPTS.items()} | {
    name: kv.KV_PRELUDE + body for name, body in kv.SCRIPTS.items()
}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SOURCES.items()}


def _no_script() -> type[Exception]:
    from redis.exceptions import NoScriptError

    return NoScriptError


def call_script(client: Any, name: str, args: tuple[Any, ...]) -> Any:
    try:
        return client.execute_command("EVALSHA", SHAS[name], 0, *args)
    except _no_script():  # a new server, or one restarted or flushed since
        client.execute_command("SCRIPT", "LOAD", SOURCES[name])
        return client.execute_command("EVALSHA", SHAS[name], 0, *args)


async def acall_script(client: Any, name: str, args: tuple[Any, ...]) -> Any:
    try:
        return await client.execute_command("EVALSHA", SHAS[name], 0, *args)
    except _no_script():
        await client.execute_command("SCRIPT", "LOAD", SOURCES[name])
        return await client.execute_command("EVALSHA", SHAS[name], 0, *args)


def _call_waiting(client: Any, name: str, args: tuple[Any, ...], wait: tuple[Any, ...]) -> tuple[Any, Any]:
    for _ in range(2):
        with client.pipeline(transaction=False) as pipe:
            pipe.execute_command("EVALSHA", SHAS[name], 0, *args)
            pipe.execute_command(*wait)
            reply, waited = pipe.execute(raise_on_error=False)
        if not isinstance(reply, _no_script()):
            return _raised(reply), _raised(waited)
        client.execute_command("SCRIPT", "LOAD", SOURCES[name])
    raise AssertionError("unreachable: the script was just loaded")


async def _acall_waiting(client: Any, name: str, args: tuple[Any, ...], wait: tuple[Any, ...]) -> tuple[Any, Any]:
    for _ in range(2):
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command("EVALSHA", SHAS[name], 0, *args)
            pipe.execute_command(*wait)
            reply, waited = await pipe.execute(raise_on_error=False)
        if not isinstance(reply, _no_script()):
            return _raised(reply), _raised(waited)
        await client.execute_command("SCRIPT", "LOAD", SOURCES[name])
    raise AssertionError("unreachable: the script was just loaded")


def _raised(reply: Any) -> Any:
    if isinstance(reply, Exception):
        raise reply
    return reply


def drive(client: Any, prefix: str, op: ops.Op[T], wait: tuple[Any, ...] | None) -> tuple[T, list[Any]]:
    """Run the operation; its result, and the answers of the waits its durable writes were sent with."""
    waited: list[Any] = []
    try:
        step = next(op)
        while True:
            if not isinstance(step, ops.Call):
                reply = client.execute_command(*step.args)
            elif wait is not None and step.durable:
                reply, answer = _call_waiting(client, step.name, (prefix, *step.args), wait)
                waited.append(answer)
            else:
                reply = call_script(client, step.name, (prefix, *step.args))
            step = op.send(reply)
    except StopIteration as stop:
        return stop.value, waited


async def adrive(client: Any, prefix: str, op: ops.Op[T], wait: tuple[Any, ...] | None) -> tuple[T, list[Any]]:
    waited: list[Any] = []
    try:
        step = next(op)
        while True:
            if not isinstance(step, ops.Call):
                reply = await client.execute_command(*step.args)
            elif wait is not None and step.durable:
                reply, answer = await _acall_waiting(client, step.name, (prefix, *step.args), wait)
                waited.append(answer)
            else:
                reply = await acall_script(client, step.name, (prefix, *step.args))
            step = op.send(reply)
    except StopIteration as stop:
        return stop.value, waited
