"""The rules of `durable check`: which calls outside a task are flagged, with which code and advice.

The codes (DUR001...) and what each flags are listed in `_check`'s docstring.
"""

from __future__ import annotations

import ast
import re

_CLOCK = "DUR001"
_RANDOM = "DUR002"
_UUID = "DUR003"
_SLEEP = "DUR004"
_ENV = "DUR005"
_FILE = "DUR006"
_NETWORK = "DUR007"
_PROCESS = "DUR008"
_SET_ORDER = "DUR009"

_VALUE = "outside a task returns a different value on replay"
_NEW_ID = "outside a task returns a different id on replay: call durable.uuid4(), or move it into a @task"
_EXACT: dict[str, tuple[str, str]] = {
    **{
        f"time.{fn}": (_CLOCK, f"{_VALUE}: call durable.now(), or move it into a @task")
        for fn in (
            "time",
            "time_ns",
            "monotonic",
            "monotonic_ns",
            "perf_counter",
            "perf_counter_ns",
            "process_time",
            "process_time_ns",
        )
    },
    **{
        f"datetime.{cls}.{fn}": (_CLOCK, f"{_VALUE}: call durable.now(), or move it into a @task")
        for cls, fn in (("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"))
    },
    "uuid.uuid1": (_UUID, _NEW_ID),
    "uuid.uuid4": (_UUID, _NEW_ID),
    "os.urandom": (_RANDOM, f"{_VALUE}: move it into a @task"),
    "time.sleep": (_SLEEP, "outside a task waits again in full on every replay: call durable.sleep(seconds)"),
    "asyncio.sleep": (_SLEEP, "outside a task waits again in full on every replay: use await durable.asleep(seconds)"),
    **{
        name: (
            _ENV,
            "reads the environment, which may differ on resume (another process or machine): read it in a @task, "
            "or pass the value in the entrypoint's input",
        )
        for name in ("os.getenv", "os.getenvb", "os.environ", "os.environb")
    },
    **{
        name: (
            _FILE,
            "outside a task does file I/O, repeated on every replay and seeing whatever is there then: "
            "move it into a @task",
        )
        for name in ("builtins.open", "io.open", "os.listdir", "os.scandir", "os.walk", "os.remove", "os.unlink")
    },
    **{
        name: (_PROCESS, "outside a task runs the command again on every replay: move it into a @task")
        for name in ("os.system", "os.popen", "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell")
    },
}
# Without a time given (``time.strftime`` without its second argument) these read the clock; given one, pure.
_CLOCK_WITHOUT_ARGS = {"time.localtime", "time.gmtime", "time.ctime", "time.asctime"}

_NETWORK_MODULES = ("requests", "httpx", "aiohttp", "urllib.request", "http.client", "socket", "urllib3")
# Values and configuration these libraries build without touching the network.
_NETWORK_PURE = {
    "Timeout",
    "Limits",
    "URL",
    "Headers",
    "QueryParams",
    "Cookies",
    "BasicAuth",
    "DigestAuth",
    "ClientTimeout",
    "Request",
    "PreparedRequest",
    "Response",
    "Proxy",
    "htons",
    "htonl",
    "ntohs",
    "ntohl",
    "inet_aton",
    "inet_ntoa",
    "inet_pton",
    "inet_ntop",
}
_PATH_CLASSES = {f"pathlib.{c}" for c in ("Path", "PosixPath", "WindowsPath")}
_PATH_IO = {
    "read_text",
    "write_text",
    "read_bytes",
    "write_bytes",
    "open",
    "touch",
    "unlink",
    "mkdir",
    "rmdir",
    "rename",
    "replace",
    "iterdir",
    "glob",
    "rglob",
    "exists",
    "is_file",
    "is_dir",
    "stat",
}
_PATH_MESSAGE = "outside a task does file I/O, repeated on every replay and seeing whatever is there then: " + (
    "move it into a @task"
)
_ENV_READS = {"get", "copy", "items", "keys", "values", "setdefault", "__getitem__"}
_SUPPRESS = re.compile(r"#\s*durable:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)


def _rule(name: str, call: ast.Call | None) -> tuple[str, str] | None:
    """The (code, message tail) for a call to (or, for ``call=None``, a read of) the qualified ``name``."""
    if name in _EXACT:
        return _EXACT[name]
    if call is None:
        return None
    no_time_given = (name in _CLOCK_WITHOUT_ARGS and not call.args) or (name == "time.strftime" and len(call.args) == 1)
    if no_time_given and not call.keywords:
        return _CLOCK, f"{_VALUE}: call durable.now(), or move it into a @task"
    module, _, leaf = name.rpartition(".")
    if module == "random":
        if leaf in ("Random", "SystemRandom"):
            if leaf == "Random" and (call.args or call.keywords):
                return None  # a seeded generator draws the same numbers every time
            return _RANDOM, "without a seed draws different numbers on replay: seed it, or move it into a @task"
        if leaf in ("seed", "getstate", "setstate") or not leaf.islower():
            return None
        return _RANDOM, f"{_VALUE}: call durable.random(), or move it into a @task"
    if module == "secrets" and leaf.islower():
        return _RANDOM, f"{_VALUE}: move it into a @task"
    if module in ("os.environ", "os.environb") and leaf in _ENV_READS:
        return _EXACT["os.environ"]
    if (module == "subprocess" and leaf[:1].islower()) or name == "subprocess.Popen":
        return _PROCESS, "outside a task runs the command again on every replay: move it into a @task"
    if any(name.startswith(m + ".") for m in _NETWORK_MODULES):
        if leaf in _NETWORK_PURE or leaf.endswith(("Error", "Exception", "Warning")) or ".exceptions." in name:
            return None
        if leaf.isupper():  # constants such as socket.AF_INET are not called, but enums can be
            return None
        return _NETWORK, (
            "outside a task does network I/O, repeated on every replay and possibly answered differently: "
            "move it into a @task"
        )
    return None


# -- the check --------------------------------------------------------------------------------------
