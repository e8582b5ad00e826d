"""Postgres connection strings: durable's own options off a URL, checks, and passwords kept out of every message.

A DSN reaches libpq exactly as the user wrote it (so a percent-encoded ``&`` stays inside its value and
cannot add an option), minus the options that are durable's (``schema``, ``lease_seconds``). Every message
a store builds from a DSN or from a psycopg error goes through `redact`, which masks each libpq form of a
password and scrubs the password's value wherever psycopg echoed it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from .._ids import check_text
from ..errors import ConfigurationError


def checked_dsn(dsn: Any, schema: Any, lease_seconds: Any) -> tuple[str, str, float]:
    """The DSN for libpq, the schema and the lease term: from the arguments and the URL's own options, checked."""
    if not isinstance(dsn, str) or not dsn.strip():
        shown = repr(dsn) if dsn is None or isinstance(dsn, str) else f"a {type(dsn).__name__}"
        raise ConfigurationError(f"PostgresStore needs a connection string (a str), not {shown}")
    check_text(dsn, "the connection string", "remove it (libpq cannot pass it on)")
    dsn, ours = own_url_options(dsn)
    if "schema" in ours:
        if schema is not None and schema != ours["schema"]:
            raise ConfigurationError(
                f"schema={schema!r} and the URL's schema={ours['schema']!r} differ: keep one of them "
                f"(drop the keyword argument or the URL's ?schema=)"
            )
        schema = ours["schema"]
    if "lease_seconds" in ours:
        try:
            from_url = float(ours["lease_seconds"])
        except ValueError:
            from_url = -1.0
        if not from_url > 0:
            raise ConfigurationError(
                f"lease_seconds={ours['lease_seconds']!r} in the URL must be a positive number of seconds"
            )
        if lease_seconds is not None and lease_seconds != from_url:
            raise ConfigurationError(
                f"lease_seconds={lease_seconds!r} and the URL's lease_seconds={ours['lease_seconds']!r} differ: "
                f"keep one of them (drop the keyword argument or the URL's ?lease_seconds=)"
            )
        lease_seconds = from_url
    schema = "public" if schema is None else schema
    lease_seconds = 30.0 if lease_seconds is None else lease_seconds
    if not isinstance(schema, str) or not schema:
        raise ConfigurationError(f"schema={schema!r}: use a Postgres schema name (1 to 63 bytes in UTF-8)")
    check_text(schema, f"schema={schema!r}", "use a plain schema name")
    if len(schema.encode("utf-8")) > 63:
        raise ConfigurationError(
            f"schema={schema!r} is {len(schema.encode('utf-8'))} bytes in UTF-8, and Postgres names hold at most "
            f"63 (it would cut the rest off): use a shorter name"
        )
    if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int | float) or not lease_seconds > 0:
        raise ConfigurationError(f"lease_seconds={lease_seconds!r}: use a positive number of seconds")
    try:
        from psycopg import Error as PsycopgError
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        pass  # the first use says what to install
    else:
        try:
            conninfo_to_dict(dsn)  # libpq's own parser: a malformed DSN is refused now, not at first use
        except PsycopgError as exc:
            hint = (
                " (durable's own options, schema and lease_seconds, are keyword arguments, or go in a "
                "postgresql:// URL's query)"
                if re.search(r"(?<![\w.-])(schema|lease_seconds)\s*=", dsn) and not _URL.match(dsn)
                else ""
            )
            raise ConfigurationError(
                f"PostgresStore's connection string is not one libpq accepts ({redact(exc, dsn).strip()}): "
                f"write it as libpq's documentation describes{hint}"
            ) from exc
    return dsn, schema, float(lease_seconds)


def own_url_options(dsn: str) -> tuple[str, dict[str, str]]:
    """A ``postgresql://`` URL without durable's own query options (``schema``, ``lease_seconds``), and those.

    libpq's options stay as written, byte for byte, so libpq decodes each exactly as it would have: a
    percent-encoded ``&`` or ``=`` stays inside its value. Values are percent-decoded as libpq does (a ``+``
    is a plus). A key/value DSN comes back unchanged, with no options of ours.
    """
    url = _URL.match(dsn)
    if url is None:
        return dsn, {}
    head, sep, query = (url.group(1).lower() + "://" + dsn[url.end() :]).partition("?")
    ours: dict[str, str] = {}
    kept = []
    for piece in query.split("&") if sep else []:
        key, _, value = piece.partition("=")
        name = unquote(key)
        if name not in ("schema", "lease_seconds"):
            kept.append(piece)
            continue
        try:
            text = unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"the URL's {name}= is not percent-encoded UTF-8: encode it as UTF-8, then percent-encode it"
            ) from None
        if ours.setdefault(name, text) != text:
            raise ConfigurationError(f"the URL gives {name} twice ({ours[name]!r} and {text!r}): keep one of them")
    return head + (sep + "&".join(kept) if kept else ""), ours


# A libpq connection string's password, in each of its forms: a URL's userinfo (up to its last "@"), a URL's
# query (``?password=``), and a key/value pair (``password = 'a b\\' c'``, or unquoted words up to the next key).
# Group 1 is kept, group 2 is the secret. ``sslpassword`` (a client key's passphrase) is one too.
_PASSWORDS = (
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/@:]*:)([^\s/]*)(?=@)", re.IGNORECASE),
    re.compile(r"([?&](?:ssl)?password=)([^&\s]*)", re.IGNORECASE),
    re.compile(
        r"((?<![\w?&])(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:[^\s']\S*(?:\s+(?![\w.-]+\s*=)[^\s=]+)*)?)",
        re.IGNORECASE,
    ),
)
_URL = re.compile(r"\s*(postgres(?:ql)?)://", re.IGNORECASE)


def redact(text: str | BaseException, dsn: str) -> str:
    """``text`` without any password: each libpq form masked, and ``dsn``'s passwords (as written, percent-decoded
    and as libpq parses them) scrubbed wherever they appear, as when psycopg echoes part of a DSN it cannot parse.

    Given an exception (a psycopg error about to be chained as ``__cause__``), its arguments are scrubbed too,
    so a logged traceback shows no password either; its message comes back.
    """
    try:
        from psycopg.conninfo import conninfo_to_dict

        parsed = conninfo_to_dict(dsn)
    except Exception:  # not installed, or a DSN libpq cannot parse: the patterns below still find its password
        parsed = {}
    secrets = {str(parsed[k]) for k in ("password", "sslpassword") if parsed.get(k)}
    for pattern in _PASSWORDS:
        for found in pattern.finditer(dsn):
            raw = found.group(2)  # quoted, percent-encoded, or words libpq could not parse (each one is echoed)
            quoted = raw[1 : -1 if len(raw) > 1 and raw.endswith("'") else None]
            secrets.update((raw, quoted) if raw.startswith("'") else (raw, unquote(raw), *raw.split()))
    secrets.update([quote(s, safe="", errors="surrogatepass") for s in secrets])
    ordered = sorted((s for s in secrets if s), key=len, reverse=True)

    def clean(message: str) -> str:
        for pattern in _PASSWORDS:
            message = pattern.sub(lambda m: m.group(1) + "***", message)
        for secret in ordered:
            message = message.replace(secret, "***")
        return message

    if isinstance(text, BaseException):
        text.args = tuple(clean(a) if isinstance(a, str) else a for a in text.args)
        return clean(str(text))
    return clean(text)
