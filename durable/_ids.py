"""What a thread id may be: one check, used wherever a thread id comes in from the user."""

from __future__ import annotations

import uuid

from .errors import ConfigurationError

MAX_THREAD_ID_BYTES = 512


def check_thread_id(value: object) -> str:
    """``value`` as a thread id (a str; a UUID or an int as its text), or raise `ConfigurationError` saying why not.

    A thread id is non-empty, at most 512 bytes in UTF-8, valid Unicode (no lone surrogates)
    and without NUL characters, so every store keeps it, and prints it, as it was given.
    """
    if not isinstance(value, str | uuid.UUID | int) or isinstance(value, bool):
        raise ConfigurationError(f"thread id {value!r}: use a non-empty string (or a UUID)")
    text = str(value)
    if text == "":
        raise ConfigurationError("thread id '': use a non-empty string (or a UUID)")
    if "\x00" in text:
        raise ConfigurationError(f"thread id {_shown(text)} contains a NUL character: remove it, or use another id")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"thread id {_shown(text)} is not valid Unicode (it contains a lone surrogate, such as undecodable "
            f"bytes read with errors='surrogateescape'): decode it properly, or use another id"
        ) from None
    if size > MAX_THREAD_ID_BYTES:
        raise ConfigurationError(
            f"thread id {_shown(text)} is {size} bytes in UTF-8; the limit is {MAX_THREAD_ID_BYTES}: "
            f"use a shorter id (a hash of a long one, for instance)"
        )
    return text


def _shown(text: str) -> str:
    """The id's repr, cut short: a message should not carry kilobytes of id."""
    return repr(text) if len(text) <= 60 else f"{text[:60]!r}... ({len(text)} characters)"
