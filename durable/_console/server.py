"""``durable ui``: open the journal, load the MODULEs, bind the socket, print the address, serve until Ctrl-C."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import secrets
import signal
import socket
import sys
import threading

from .. import _cli_format as fmt
from ..errors import ConfigurationError, DurableError, JournalNotFoundError

MIN_TOKEN = 16  # characters a --token-file token must have


def read_token(path: str) -> str:
    """The token in ``path`` (its first line, stripped)."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the token file {path!r}: {exc}") from None
    if len(token) < MIN_TOKEN or not token.isprintable() or " " in token:
        raise ConfigurationError(
            f"the token file {path!r} must hold a token of {MIN_TOKEN}+ printable characters without spaces: "
            f'python -c "import secrets; print(secrets.token_urlsafe(32))" > {path}'
        )
    return token


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port, which the address printed names)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .._admin import Threads
    from .._urls import resolve_store
    from .app import build_app
    from .runner import Runner, load_targets
    from .service import Console

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = None
    try:
        token = read_token(args.token_file) if args.token_file else secrets.token_urlsafe(32)
        secret = fmt.read_secret(args.secret_file) if args.secret_file else None
        if args.read_only and args.targets:
            raise ConfigurationError("--read-only runs nothing: drop the MODULEs, or --read-only")
        entrypoints = load_targets(args.targets) if args.targets else []
        store = resolve_store(args.url, read_only=args.read_only)
        threads = Threads(store, secret=secret, unsafe_unpickle=args.unsafe_unpickle)
        runner = Runner(entrypoints, store) if entrypoints else None
        sock = bind(args.host, args.port)
    except JournalNotFoundError as exc:
        fmt.fail("ui", exc)
        return 2
    except DurableError as exc:
        fmt.fail("ui", exc)
        if store is not None:
            store.close()
        return 1
    console = Console(threads, token, read_only=args.read_only, runner=runner, url=repr(store))
    host, port = sock.getsockname()[:2]
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    print(f"durable ui: {store!r}{' (read-only)' if args.read_only else ''}", flush=True)
    if runner is not None:
        print(f"durable ui: carrying {', '.join(runner.names)} (answered runs resume here)", flush=True)
    else:
        print("durable ui: no MODULEs: answers wait for a worker (durable worker MODULE)", flush=True)
    if not _loopback(host):
        print(f"durable ui: warning: listening on {host}, beyond this machine: put it behind TLS", file=sys.stderr)
    if args.token_file:
        print(f"durable ui: open {where}?token=<the token in {args.token_file}>", flush=True)
    else:
        print(f"durable ui: open {where}?token={token}", flush=True)
    server = uvicorn.Server(uvicorn.Config(build_app(console), log_level="warning", lifespan="on"))
    if threading.current_thread() is threading.main_thread():
        # uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal again under the handlers it
        # found: these, so that a stop is a clean exit (0) rather than a KeyboardInterrupt's traceback.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        store.close()
    return 0
