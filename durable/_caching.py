"""A task's cache: `CachePolicy` on a task, a `Cache` on the entrypoint, consulted after the journal.

The journal answers "did *this run* already make this call?"; the cache answers "did *any* run
already compute this task for these arguments?". A call the journal has replays from the journal,
never from the cache. A call it lacks asks the cache first: a hit is journaled as the call's outcome
(so a resume of this run replays it from the journal, whatever the cache holds by then), and
streamed as LangGraph streams a hit (``{"task": value, "__metadata__": {"cached": True}}``). A miss
runs the task and caches its value. Cached values are serialized with the entrypoint's serializer
and signed with its key, like journal values, under a slot of their own.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._codec import Codec
from .errors import DurableError

if TYPE_CHECKING:
    from ._run import Run, TaskSpec

KeyFunc = TypeVar("KeyFunc", bound=Callable[..., Any])

_CACHE_NONCE = b"durable/cache"  # cache entries are not a thread's: their slot says so


def default_cache_key(*args: Any, **kwargs: Any) -> bytes:
    """The arguments, pickled (protocol 5, as LangGraph does): equal plain arguments give equal keys."""
    return pickle.dumps((args, sorted(kwargs.items())), protocol=5, fix_imports=False)


@dataclass(frozen=True, slots=True)
class CachePolicy(Generic[KeyFunc]):
    """Cache a task's results across runs and threads (LangGraph's `CachePolicy`).

    ``key_func`` turns the call's arguments into the cache key (a str or bytes; default: the pickled
    arguments); ``ttl`` is how many seconds an entry lives (``None``: until cleared).
    """

    key_func: KeyFunc = field(default=default_cache_key)  # type: ignore[assignment]
    ttl: int | float | None = None


def cache_key(policy: CachePolicy[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A fixed-length key for the cache table, from the policy's key function."""
    raw = policy.key_func(*args, **kwargs)
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    return hashlib.sha256(data).hexdigest()


def cache_identity(fn: Callable[..., Any], name: str, version: int | None = None) -> str:
    """Which task a cache entry belongs to: its function's module and qualified name (as LangGraph keys it),
    and its version when it has one (a value cached by another version is not this one's)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    identity = f"{module}.{qualname}" if module and qualname else name
    return identity if version is None or version == 1 else f"{identity}@v{version}"  # unversioned is version 1


def _codec(run: Run, identity: str) -> Codec:
    return Codec(run.serde, run.codec.keyring, f"#cache {identity}", _CACHE_NONCE, "", run.max_bytes)


def lookup(run: Run, spec: TaskSpec, key: str) -> tuple[bool, bytes]:
    """Whether the cache holds this call, and its serialized value (verified, signature removed)."""
    cache = run.cache
    assert cache is not None and spec.cache is not None
    identity = cache_identity(spec.fn, spec.name, spec.version)
    blob = cache.get(identity, key)
    if blob is None:
        return False, b""
    try:
        return True, _codec(run, identity).open(blob, 0, key, spec.name)
    except DurableError:
        return False, b""  # written under another key, or altered: computed again (and overwritten)


def store(run: Run, spec: TaskSpec, key: str, inner: bytes) -> None:
    """Cache a freshly computed value (its serialized bytes), signed for its slot."""
    cache = run.cache
    assert cache is not None and spec.cache is not None
    identity = cache_identity(spec.fn, spec.name, spec.version)
    cache.set(identity, key, _codec(run, identity).seal(inner, 0, key, spec.name), spec.cache.ttl)
