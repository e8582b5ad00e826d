"""`RedisStore`'s URLs and options: what goes to redis-py, what is the store's own, and how a URL is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .redis import RedisStore

OPTIONS = ("prefix", "lease_seconds", "wait_replicas", "wait_aof", "wait_timeout")  # the store's own, off the URL


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL for redis-py, and this store's options taken off its query."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise ConfigurationError(
            f"{redact(url)!r} is not a Redis URL: use 'redis://host:6379/0' (or 'rediss://' for TLS)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    retrying = sorted({k for k, _ in query if k.startswith("retry")})
    if retrying:
        raise ConfigurationError(
            f"{redact(url)!r}: {', '.join(retrying)} would make redis-py send a command again behind the store's "
            f"back (a claim or a worker's reservation twice); the store retries what is safe to retry itself"
        )
    ours = {k: v for k, v in query if k in OPTIONS}
    rest = [(k, v) for k, v in query if k not in OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def where(store: RedisStore) -> tuple[str, int, int, str]:
    parts = urlsplit(store.url)
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else int(dict(parse_qsl(parts.query)).get("db", "0") or 0)
    host = (parts.hostname or "localhost").lower()
    return ("127.0.0.1" if host == "localhost" else host), parts.port or 6379, db, store.prefix


def checked_prefix(prefix: str) -> str:
    if not prefix or any(c in prefix for c in ":{}* ?[]") or not prefix.isprintable():
        raise ConfigurationError(
            f"prefix={prefix!r}: use a non-empty name of printable characters without ':', spaces, braces or glob "
            f"characters (every key of the journal starts with it and ':', so 'a' and 'a:t' would share keys)"
        )
    return prefix


def number(name: str, value: float | None, text: str | None, default: float) -> float:
    if value is not None:
        return value
    if text is None:
        return default
    try:
        found = float(text)
    except ValueError:
        found = -1.0
    if not found >= 0:
        raise ConfigurationError(f"{name}={text!r}: use a number, 0 or more")
    return found


def positive(name: str, value: float | None, text: str | None, default: float) -> float:
    seconds = number(name, value, text, default)
    if not seconds > 0:
        raise ConfigurationError(f"{name}={seconds!r} must be a positive number of seconds")
    return seconds


def flag(name: str, value: bool | None, text: str | None) -> bool:
    if value is not None:
        return value
    if text is None:
        return False
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{name}={text!r}: use true or false")
