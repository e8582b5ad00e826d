"""The Postgres store's connection strings: passwords never shown, URL options that cannot inject, names checked.

Most of these only parse; the ones that talk to a server use the ``pg_schema`` fixture (skipped without one).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from durable import ConfigurationError, PostgresStore, StoreError
from durable._urls import store_from_url
from durable.stores import _pg_ops

Schema = tuple[str, str]
SECRET = "hunter2-secret"

# The libpq forms a password takes, each with SECRET (or a part of it) as the password.
PASSWORD_FORMS = {
    "url-userinfo": f"postgresql://u:{SECRET}@h/db",
    "url-userinfo-percent-encoded": "postgresql://u:hunter2%2Dsecret%40x@h/db",
    "url-query": f"postgresql://u@h/db?password={SECRET}",
    "url-query-among-others": f"postgresql://u@h/db?sslmode=prefer&password={SECRET}&application_name=a",
    "url-sslpassword": f"postgresql://u@h/db?sslpassword={SECRET}",
    "key-value": f"host=h password={SECRET}",
    "key-value-spaces": f"host=h password = {SECRET} dbname=d",
    "key-value-first": f"password={SECRET} host=h",
    "key-value-quoted": "host=h password='hunter2 \\' secret' dbname=d",
}


def everything_shown(err: BaseException) -> str:
    """What a user or a log can see of an error: its message and the whole formatted chain, causes included."""
    return str(err) + "".join(traceback.format_exception(type(err), err, err.__traceback__))


def assert_hidden(text: str) -> None:
    for part in ("hunter2", "secret", "%2Dsecret"):
        assert part not in text, f"{part!r} leaked into {text!r}"


@pytest.mark.parametrize("dsn", PASSWORD_FORMS.values(), ids=PASSWORD_FORMS.keys())
def test_the_repr_hides_every_libpq_password_form(dsn: str) -> None:
    """A store's repr masks the password in URL userinfo, URL query and key/value (spaced, quoted) forms."""
    shown = repr(PostgresStore(dsn))
    assert_hidden(shown)
    assert "***" in shown


@pytest.mark.parametrize(
    "dsn",
    [
        f"host=h password={SECRET} bogus",  # psycopg: missing "=" after "bogus"
        "host=h password=hunter2 secret dbname=d",  # an unquoted space: missing "=" after "secret"
        f"host=h password={SECRET} bogus_option=1",
        f"postgresql://u:{SECRET}@h/db?bogus_option=1",
        f"postgresql://u@h/db?password={SECRET}&bogus_option=1",
        f"host=h password='{SECRET}",  # an unterminated quote
    ],
)
def test_a_dsn_libpq_cannot_parse_is_a_configuration_error_without_its_password(dsn: str) -> None:
    """A malformed DSN is refused when the store is made, and neither the message nor its cause shows the password."""
    with pytest.raises(ConfigurationError, match="libpq") as err:
        PostgresStore(dsn)
    assert_hidden(everything_shown(err.value))
    assert isinstance(err.value.__cause__, psycopg.Error)  # the driver's error is kept, scrubbed


def test_a_dsn_that_is_not_text_is_not_echoed() -> None:
    """A bytes DSN is refused by its type, without showing its contents."""
    with pytest.raises(ConfigurationError, match="connection string") as err:
        PostgresStore(f"postgresql://u:{SECRET}@h/db".encode())  # type: ignore[arg-type]
    assert_hidden(str(err.value))


def test_a_bad_url_option_never_echoes_the_password() -> None:
    """A bad lease_seconds in a URL with a password names the option, not the URL."""
    for make in (store_from_url, PostgresStore):
        with pytest.raises(ConfigurationError, match="lease_seconds='soon'") as err:
            make(f"postgresql://u:{SECRET}@h/db?lease_seconds=soon")
        assert_hidden(str(err.value))


@pytest.mark.parametrize(
    "query, value",
    [
        ("application_name=x%26host%3Devil", "x&host=evil"),
        ("application_name=x%26host%3Devil&schema=s", "x&host=evil"),
        ("schema=s&application_name=a%3Db%26sslmode%3Ddisable", "a=b&sslmode=disable"),
        ("application_name=a+b%20c", "a+b c"),  # libpq decodes %20, and keeps a plus
    ],
)
def test_a_percent_encoded_ampersand_stays_inside_its_value(query: str, value: str) -> None:
    """A URL's %26 and %3D reach libpq inside their value: they cannot add a host, sslmode or other option."""
    for store in (store_from_url(f"postgresql://u@h/db?{query}"), PostgresStore(f"postgresql://u@h/db?{query}")):
        assert isinstance(store, PostgresStore)
        seen = conninfo_to_dict(store.dsn)
        assert seen == {"user": "u", "host": "h", "dbname": "db", "application_name": value}


def test_the_store_takes_the_url_options_a_checkpointer_url_takes() -> None:
    """PostgresStore(url) and checkpointer=url read schema and lease_seconds alike, and hand libpq the rest."""
    url = "postgresql://u@h:5433/db?schema=jobs&sslmode=disable&lease_seconds=5"
    direct, resolved = PostgresStore(url), store_from_url(url)
    assert isinstance(resolved, PostgresStore)
    for store in (direct, resolved):
        assert (store.schema, store.lease_seconds) == ("jobs", 5.0)
        assert store.dsn == "postgresql://u@h:5433/db?sslmode=disable"
    assert repr(direct) == repr(resolved)
    assert PostgresStore("POSTGRES://u@h/db?schema=jobs").dsn == "postgres://u@h/db"  # libpq wants it lower-case
    assert PostgresStore("postgresql://u@h/db?schema=my%20jobs").schema == "my jobs"


def test_a_keyword_and_the_url_must_agree() -> None:
    """schema or lease_seconds given twice with different values is a ConfigurationError saying which to keep."""
    with pytest.raises(ConfigurationError, match=r"schema='other'.*schema='jobs'.*keep one"):
        PostgresStore("postgresql://u@h/db?schema=jobs", schema="other")
    with pytest.raises(ConfigurationError, match=r"lease_seconds=9.*lease_seconds='5'.*keep one"):
        PostgresStore("postgresql://u@h/db?lease_seconds=5", lease_seconds=9)
    with pytest.raises(ConfigurationError, match=r"schema twice.*keep one"):
        PostgresStore("postgresql://u@h/db?schema=a&schema=b")
    same = PostgresStore("postgresql://u@h/db?schema=jobs&lease_seconds=5", schema="jobs", lease_seconds=5)
    assert (same.schema, same.lease_seconds) == ("jobs", 5.0)


def test_key_value_dsns_are_passed_on_unchanged() -> None:
    """A key/value DSN reaches libpq as written, with the keyword arguments' schema and lease."""
    dsn = "host=h port=5433 dbname=d user=u application_name='a b'"
    store = PostgresStore(dsn, schema="jobs", lease_seconds=7)
    assert (store.dsn, store.schema, store.lease_seconds) == (dsn, "jobs", 7)
    assert PostgresStore(dsn).schema == "public" and PostgresStore(dsn).lease_seconds == 30.0
    with pytest.raises(ConfigurationError, match="keyword arguments"):
        PostgresStore("host=h schema=jobs")  # durable's options are not libpq's


def test_schema_names_are_measured_in_bytes() -> None:
    """Postgres names hold 63 bytes: 40 two-byte letters (80 bytes) are refused, 31 of them (62 bytes) are not."""
    with pytest.raises(ConfigurationError, match="80 bytes"):
        PostgresStore("postgresql://u@h/db", schema="é" * 40)
    with pytest.raises(ConfigurationError, match="64 bytes"):
        PostgresStore("postgresql://u@h/db?schema=" + "a" * 64)
    assert PostgresStore("postgresql://u@h/db", schema="é" * 31).schema == "é" * 31
    assert PostgresStore("postgresql://u@h/db", schema="a" * 63).schema == "a" * 63


@pytest.mark.parametrize(
    "dsn, options",
    [
        ("postgresql://u@h/db", {"schema": "a\x00b"}),
        ("postgresql://u@h/db", {"schema": "\ud800"}),
        ("postgresql://u@h/db?schema=a%ffb", {}),  # not UTF-8 once decoded
        (f"host=h password={SECRET}\x00 dbname=d", {}),
        (f"host=h password={SECRET}\ud800", {}),
        (f"postgresql://u:{SECRET}@h/db\x00", {}),
        ("postgresql://u@h/db?application_name=a%00b", {}),  # libpq refuses an encoded NUL
    ],
    ids=["schema-nul", "schema-surrogate", "schema-not-utf8", "dsn-nul", "dsn-surrogate", "url-nul", "url-%00"],
)
def test_nul_and_lone_surrogates_are_configuration_errors(dsn: str, options: dict[str, Any]) -> None:
    """A NUL or a lone surrogate in the schema or the DSN is a ConfigurationError, never a crash or a leak."""
    with pytest.raises(ConfigurationError) as err:
        PostgresStore(dsn, **options)
    assert_hidden(everything_shown(err.value))


# -- errors from a connection ------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://u:{SECRET}@127.0.0.1:1/db?connect_timeout=1",
        f"postgresql://u@127.0.0.1:1/db?password={SECRET}&connect_timeout=1",
        f"host=127.0.0.1 port=1 password = {SECRET} connect_timeout=1",
    ],
)
def test_an_unreachable_server_error_names_no_password(dsn: str) -> None:
    """'cannot reach' names where, never the password, in the message, the repr and the chained cause."""
    store = PostgresStore(dsn, connect_timeout=1)
    with pytest.raises(StoreError, match=r"cannot reach the Postgres journal at .*127\.0\.0\.1") as err:
        store.get_thread("t")
    assert_hidden(everything_shown(err.value))
    assert_hidden(repr(store))


def with_password(dsn: str, **extra: str) -> str:
    """The test server's DSN with SECRET as its password (trust auth ignores it) and more libpq options."""
    options = {"password": SECRET, **extra}
    if "://" in dsn:
        return dsn + ("&" if "?" in dsn else "?") + "&".join(f"{k}={v}" for k, v in options.items())
    return dsn + "".join(f" {k}={v}" for k, v in options.items())


@pytest.fixture
def echoing_get_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """get_thread runs a statement whose error quotes the password (as a driver error could quote a DSN)."""

    def get_thread(q: Any, thread_id: str) -> Any:
        yield _pg_ops.Stmt("SELECT %s::int", (SECRET,), "one")
        return None

    monkeypatch.setattr(_pg_ops, "get_thread", get_thread)
    yield


def test_a_server_error_names_no_password(pg_schema: Schema) -> None:
    """The server refusing a connection: StoreError naming the place, not the password, here or in a log."""
    dsn, schema = pg_schema
    store = PostgresStore(with_password(dsn, dbname="durable_no_such_db"), schema=schema)
    with pytest.raises(StoreError, match=r"cannot reach the Postgres journal.*durable_no_such_db") as err:
        store.get_thread("t")
    assert_hidden(everything_shown(err.value))
    assert_hidden(repr(store))


def test_a_statement_error_quoting_the_password_is_scrubbed(pg_schema: Schema, echoing_get_thread: None) -> None:
    """A driver error that echoes the password is wrapped in a StoreError whose message and cause never show it."""
    dsn, schema = pg_schema
    with PostgresStore(with_password(dsn), schema=schema) as store:
        with pytest.raises(StoreError, match="invalid input syntax") as err:
            store.get_thread("t")
        assert isinstance(err.value.__cause__, psycopg.errors.InvalidTextRepresentation)
        assert_hidden(everything_shown(err.value))
