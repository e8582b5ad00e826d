"""A state key that holds a conversation: the `add_messages` reducer and `MessagesState`.

`add_messages(left, right)` folds an update (``right``) into a list of messages (``left``) the way
LangGraph's reducer of the same name does:

* both sides may be a list of messages or a single message (a single one is treated as a list of one);
* a message without an id gets a fresh one, ``str(uuid.uuid4())``, before merging;
* a message of ``right`` whose id is already in ``left`` replaces it where it stands; any other is appended;
* a removal (langchain-core's ``RemoveMessage``, or the dict form below) deletes the message with its id,
  and an id that is in neither side is an error (`InvalidUpdateError`, a `ValueError` like LangGraph's);
  a later message of ``right`` with a removed id brings it back at its old position;
* a removal whose id is `REMOVE_ALL_MESSAGES` drops everything before it: the result is what follows it
  in ``right``, as it is (the last such removal wins);
* ``format="langchain-openai"`` returns the messages reformatted as OpenAI would have them (text and
  ``image_url`` blocks, tool results as ``ToolMessage``), by langchain-core's
  ``convert_to_openai_messages``. As in LangGraph, the reformatted messages lose their ids, and a
  `REMOVE_ALL_MESSAGES` update returns its tail unformatted.

``add_messages(format=...)``, called without ``left`` and ``right``, returns the reducer with that format,
ready for ``Annotated[list, add_messages(format="langchain-openai")]``.

Two forms of messages
---------------------

With langchain-core installed, messages are LangChain messages: both sides go through
``langchain_core.messages.convert_to_messages`` (a string becomes a ``HumanMessage``; ``(role, content)``
pairs and ``{"role": ..., "content": ...}`` dicts become the message of that role; chunks become whole
messages), and a removal is a ``RemoveMessage``. This is exactly LangGraph's reducer.

Without langchain-core, messages are plain dicts, and the reducer accepts:

* a dict with a ``"role"`` (or, without one, a ``"type"``) and a ``"content"`` key, such as
  ``{"role": "user", "content": "hi"}`` or ``{"type": "human", "content": "hi"}``. The role is one of the
  names langchain-core knows (``user``/``human``, ``assistant``/``ai``, ``system``/``developer``,
  ``tool``, ``function``); other keys (``"id"``, ``"name"``, ``"tool_call_id"``...) are kept as they are;
* a string, which becomes ``{"role": "user", "content": s}``;
* a ``(role, content)`` pair (a tuple or a list of two), which becomes ``{"role": role, "content": content}``;
* a removal: ``{"type": "remove", "id": message_id}`` (``"content"`` may be left out), the id being
  `REMOVE_ALL_MESSAGES` to drop them all. With ``"content": ""`` added, langchain-core reads the same dict
  as a ``RemoveMessage``, so that spelling works in both forms.

Messages are compared by their ``"id"`` key. The caller's dicts are never changed: a dict without an id
is replaced by a copy that has one, and a dict with an id is kept as it is (the same object).
``format="langchain-openai"`` needs langchain-core.

In both forms the reducer never changes the messages it is given (LangGraph's sets the ids of the caller's
messages in place; this one gives a copy the id). The same message object, given twice without an id,
still gets one id, as in LangGraph.

Whether langchain-core is installed is checked on the first call, not when this module is imported:
importing it never imports langchain-core.
"""

from __future__ import annotations

import functools
import importlib.util
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict, overload

from ..errors import ConfigurationError, InvalidUpdateError, UsageError

__all__ = ["REMOVE_ALL_MESSAGES", "MessagesState", "add_messages"]

REMOVE_ALL_MESSAGES = "__remove_all__"
"""The id of a removal that drops every message before it (LangGraph's value, so updates port as they are)."""

MessageFormat = Literal["langchain-openai"]
"""The formats `add_messages` can return messages in."""

_FORMATS: tuple[str, ...] = ("langchain-openai",)

# The roles langchain-core's `convert_to_messages` accepts; the dict form refuses the same ones it does.
_ROLES = frozenset({"human", "user", "ai", "assistant", "system", "developer", "function", "tool", "remove"})


@functools.cache
def _langchain_available() -> bool:
    """Whether langchain-core can be imported (found once, without importing it)."""
    try:
        return importlib.util.find_spec("langchain_core") is not None
    except (ImportError, ValueError):  # a broken install, or a module without a spec in sys.modules
        return False


@overload
def add_messages(
    left: None = None, right: None = None, *, format: MessageFormat | None = None
) -> Callable[[Any, Any], list[Any]]: ...


@overload
def add_messages(left: Any, right: Any, *, format: MessageFormat | None = None) -> list[Any]: ...


def add_messages(
    left: Any = None, right: Any = None, *, format: MessageFormat | None = None
) -> list[Any] | Callable[[Any, Any], list[Any]]:
    """Merge the messages of ``right`` into ``left``, replacing the ones with the same id, and return the result.

    ``left`` and ``right`` are each a list of messages or a single message (see the module's docstring for
    what a message may be, with and without langchain-core). Messages without an id get a new uuid4 id,
    a message of ``right`` replaces the message of ``left`` with its id (keeping its position), and the
    others are appended. A removal deletes the message with its id (`InvalidUpdateError`, a `ValueError` as
    LangGraph's error is, if there is none) and a
    removal with the id `REMOVE_ALL_MESSAGES` drops every message before it.

    ``format="langchain-openai"`` (langchain-core only) returns the messages in OpenAI's format, without ids.

    Called with neither ``left`` nor ``right``, returns the reducer with the given ``format``::

        class State(TypedDict):
            messages: Annotated[list[Any], add_messages(format="langchain-openai")]

    Neither ``left`` nor ``right`` is changed: the result is a new list.
    """
    if format is not None and format not in _FORMATS:
        raise ConfigurationError(
            f"add_messages cannot return messages in format {format!r}: use format='langchain-openai' or None"
        )
    if left is None and right is None:
        return functools.partial(_add_messages, format=format)
    if left is None or right is None:
        missing = "left" if left is None else "right"
        raise ConfigurationError(
            f"add_messages needs both 'left' and 'right' (got {missing}=None): pass both to merge them, "
            f"or neither to get the reducer for a format"
        )
    return _add_messages(left, right, format=format)


def _add_messages(left: Any, right: Any, *, format: MessageFormat | None = None) -> list[Any]:
    """The reducer itself (``format`` already checked): what ``add_messages(format=...)`` returns, bound."""
    if _langchain_available():
        return _merge_langchain(left, right, format)
    if format is not None:
        raise ConfigurationError(
            f"add_messages(format={format!r}) returns LangChain messages, which needs langchain-core: "
            f"pip install langchain-core (or leave format out to keep plain dict messages)"
        )
    return _merge_dicts(left, right)


# -- langchain-core messages ------------------------------------------------------------------------


def _merge_langchain(left: Any, right: Any, format: MessageFormat | None) -> list[Any]:
    from langchain_core.messages import RemoveMessage  # type: ignore[import-not-found, unused-ignore]

    with_ids = _IdGiver(lambda m, new_id: m.model_copy(update={"id": new_id}), lambda m: m.id)
    olds = [with_ids(m) for m in _to_langchain(left)]
    news = [with_ids(m) for m in _to_langchain(right)]
    merged = _merge(olds, news, lambda m: m.id, lambda m: isinstance(m, RemoveMessage))
    if merged is None:  # a REMOVE_ALL_MESSAGES: LangGraph returns the rest of the update as it is
        return _after_remove_all(news, lambda m: isinstance(m, RemoveMessage) and m.id == REMOVE_ALL_MESSAGES)
    if format == "langchain-openai":
        from langchain_core.messages import (  # type: ignore[import-not-found, unused-ignore]
            convert_to_messages,
            convert_to_openai_messages,
        )

        return list(convert_to_messages(convert_to_openai_messages(merged)))
    return merged


def _to_langchain(value: Any) -> list[Any]:
    """LangChain messages from a message or a list of them (LangGraph's coercion: chunks become messages)."""
    from langchain_core.messages import (  # type: ignore[import-not-found, unused-ignore]
        BaseMessage,
        BaseMessageChunk,
        convert_to_messages,
        message_chunk_to_message,
    )

    items = value if isinstance(value, list) else [value]
    if all(isinstance(m, BaseMessage) and not isinstance(m, BaseMessageChunk) for m in items):
        return list(items)
    return [message_chunk_to_message(m) for m in convert_to_messages(items)]


# -- plain dict messages ----------------------------------------------------------------------------


def _merge_dicts(left: Any, right: Any) -> list[Any]:
    with_ids = _IdGiver(lambda m, new_id: {**m, "id": new_id}, lambda m: m.get("id"))
    olds = [with_ids(m) for m in _to_dicts(left)]
    news = [with_ids(m) for m in _to_dicts(right)]
    merged = _merge(olds, news, lambda m: m.get("id"), _is_removal)
    if merged is None:
        return _after_remove_all(news, lambda m: _is_removal(m) and m.get("id") == REMOVE_ALL_MESSAGES)
    return merged


def _to_dicts(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [_to_dict(item) for item in items]


def _to_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"role": "user", "content": item}
    if isinstance(item, dict):
        role = _role(item)
        if role is None or (role != "remove" and "content" not in item):
            raise ConfigurationError(
                f"a message dict needs a 'role' (or 'type') and a 'content' key, got {item!r}: "
                f"write {{'role': 'user', 'content': ...}}, or {{'type': 'remove', 'id': ...}} to remove one"
            )
        _check_role(role, item)
        if role == "remove" and item.get("id") is None:
            raise ConfigurationError(f"a removal names the id of the message to remove, got {item!r}")
        return item
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise ConfigurationError(f"a message given as a sequence is a (role, content) pair, got {item!r}")
        role, content = item
        _check_role(role, item)
        if role == "remove":
            raise ConfigurationError(
                f"a removal is a dict with the id to remove, {{'type': 'remove', 'id': ...}}, not the pair {item!r}"
            )
        return {"role": role, "content": content}
    raise UsageError(
        f"add_messages cannot read a {type(item).__name__} as a message: without langchain-core a message is a "
        f"dict ({{'role': 'user', 'content': ...}}), a string, or a (role, content) pair"
    )


def _role(message: dict[str, Any]) -> Any:
    """A dict's role: its "role" key, else its "type" key (langchain-core's order)."""
    return message["role"] if "role" in message else message.get("type")


def _check_role(role: Any, item: Any) -> None:
    if not isinstance(role, str) or role not in _ROLES:
        raise ConfigurationError(
            f"unknown message role {role!r} in {item!r}: use one of 'human', 'user', 'ai', 'assistant', "
            f"'function', 'tool', 'system', 'developer' (or 'remove' in a removal dict)"
        )


def _is_removal(message: dict[str, Any]) -> bool:
    return bool(_role(message) == "remove")


# -- the merge, for both forms ----------------------------------------------------------------------


class _IdGiver:
    """Gives messages without an id a new one, on a copy; the same object given twice gets the same copy."""

    def __init__(self, copy_with_id: Callable[[Any, str], Any], id_of: Callable[[Any], Any]) -> None:
        self._copy_with_id = copy_with_id
        self._id_of = id_of
        self._copies: dict[int, tuple[Any, Any]] = {}  # id(original) -> (original, copy): keeps originals alive

    def __call__(self, message: Any) -> Any:
        if self._id_of(message) is not None:
            return message
        known = self._copies.get(id(message))
        if known is None:
            known = self._copies[id(message)] = (message, self._copy_with_id(message, str(uuid.uuid4())))
        return known[1]


def _merge(
    olds: list[Any], news: list[Any], id_of: Callable[[Any], Any], is_removal: Callable[[Any], bool]
) -> list[Any] | None:
    """``olds`` updated by ``news`` (all with ids), or None when ``news`` holds a REMOVE_ALL_MESSAGES."""
    if any(is_removal(m) and id_of(m) == REMOVE_ALL_MESSAGES for m in news):
        return None
    merged = list(olds)
    index = {id_of(m): i for i, m in enumerate(merged)}
    removed: set[Any] = set()
    for message in news:
        message_id = id_of(message)
        at = index.get(message_id)
        if at is not None:
            if is_removal(message):
                removed.add(message_id)
            else:
                removed.discard(message_id)
                merged[at] = message
        elif is_removal(message):
            raise InvalidUpdateError(
                f"cannot remove the message with id {message_id!r}: there is no message with that id"
            )
        else:
            index[message_id] = len(merged)
            merged.append(message)
    if removed:
        merged = [m for m in merged if id_of(m) not in removed]
    return merged


def _after_remove_all(news: list[Any], removes_all: Callable[[Any], bool]) -> list[Any]:
    last = max(i for i, m in enumerate(news) if removes_all(m))
    return news[last + 1 :]


class MessagesState(TypedDict):
    """A state whose ``messages`` key is a conversation merged by `add_messages`; subclass it to add keys.

    The annotation is ``list[Any]``, not LangGraph's ``list[AnyMessage]``: ``AnyMessage`` is langchain-core's,
    and naming it here would import langchain-core with this module (or fail without it). The reducer, the
    part the graph reads, is the same.
    """

    messages: Annotated[list[Any], add_messages]


def with_ids(value: Any) -> list[Any]:
    """An update for `add_messages` with every message converted and given its id now.

    A graph journals a node's writes and folds them with the reducer again on replay; the reducer
    gives a message without an id a random one, so the ids are given once, in the node's journaled
    task, and a replay (or ``get_state_history``) rebuilds the same messages with the same ids.
    """
    if _langchain_available():
        giver = _IdGiver(lambda m, new_id: m.model_copy(update={"id": new_id}), lambda m: m.id)
        return [giver(m) for m in _to_langchain(value)]
    giver = _IdGiver(lambda m, new_id: {**m, "id": new_id}, lambda m: m.get("id"))
    return [giver(m) for m in _to_dicts(value)]


def is_add_messages(reducer: Any) -> bool:
    """Whether a state key's reducer is `add_messages` (durable's, bound to a format, or LangGraph's)."""
    if isinstance(reducer, functools.partial):
        reducer = reducer.func
    if reducer is add_messages or reducer is _add_messages:
        return True
    module = getattr(reducer, "__module__", "") or ""
    return module.startswith("langgraph.graph") and getattr(reducer, "__name__", "").lstrip("_") == "add_messages"
