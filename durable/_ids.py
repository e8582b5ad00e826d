"""What a thread id, a path or a connection string may hold: one check each, used wherever one comes in."""

from __future__ import annotations

import uuid

from .errors import ConfigurationError

MAX_THREAD_ID_BYTES = 512


def check_text(text: str, what: str, fix: str) -> str:
    """``text``, or a `ConfigurationError` naming ``what`` and ``fix`` if no store can keep it as given:
    a NUL character (C strings end there) or a lone surrogate (no UTF-8 encodes it)."""
    if "\x00" in text:
        raise ConfigurationError(f"{what} contains a NUL character: {fix}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{what} is not valid Unicode (it contains a lone surrogate, as text decoded with "
            f"errors='surrogateescape' from undecodable bytes does): {fix}"
        ) from None
    return text


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
    size = len(check_text(text, f"thread id {_shown(text)}", "decode it properly, or use another id").encode())
    if size > MAX_THREAD_ID_BYTES:
        raise ConfigurationError(
            f"thread id {_shown(text)} is {size} bytes in UTF-8; the limit is {MAX_THREAD_ID_BYTES}: "
            f"use a shorter id (a hash of a long one, for instance)"
        )
    return text


def _shown(text: str) -> str:
    """The id's repr, cut short: a message should not carry kilobytes of id."""
    return repr(text) if len(text) <= 60 else f"{text[:60]!r}... ({len(text)} characters)"
