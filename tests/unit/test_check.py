"""`durable.check` / ``durable check``: the static determinism check of entrypoint bodies.

Each test writes a real module into ``tmp_path``, imports it, and checks its entrypoints: the findings must name the
exact line, column and code, and the same calls where they are safe (in tasks, suppressed, shadowed) must be silent.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from durable._check import Finding, check
from durable.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count()

MakeModule = Callable[[str], ModuleType]


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeModule]:
    """Write ``source`` to a fresh module in tmp_path and import it (a new name each time: no stale caches)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(source: str) -> ModuleType:
        name = f"flows_{os.getpid()}_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source).lstrip("\n"))
        importlib.invalidate_caches()
        made.append(name)
        return importlib.import_module(name)

    yield make
    for name in made:
        sys.modules.pop(name, None)


def line_of(module: ModuleType, text: str, nth: int = 0) -> int:
    """The 1-based line of the ``nth`` line of the module's file containing ``text``."""
    lines = Path(module.__file__ or "").read_text().splitlines()
    return [i for i, line in enumerate(lines, 1) if text in line][nth]


def codes_and_lines(findings: list[Finding]) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in findings]


# -- each kind of call is found, with its exact place ----------------------------------------------

CASES = [
    ("import time", "time.time()", "DUR001"),
    ("import time as t", "t.monotonic()", "DUR001"),
    ("from time import time as now", "now()", "DUR001"),
    ("from time import perf_counter", "perf_counter()", "DUR001"),
    ("import time", "time.time_ns()", "DUR001"),
    ("import time", "time.localtime()", "DUR001"),
    ("import time", "time.strftime('%Y')", "DUR001"),
    ("from datetime import datetime", "datetime.now()", "DUR001"),
    ("import datetime", "datetime.datetime.utcnow()", "DUR001"),
    ("import datetime as dt", "dt.datetime.today()", "DUR001"),
    ("from datetime import date", "date.today()", "DUR001"),
    ("import random", "random.random()", "DUR002"),
    ("from random import choice", "choice([1, 2])", "DUR002"),
    ("import random", "random.Random()", "DUR002"),
    ("import secrets", "secrets.token_hex(8)", "DUR002"),
    ("import os", "os.urandom(8)", "DUR002"),
    ("import uuid", "uuid.uuid4()", "DUR003"),
    ("from uuid import uuid1", "uuid1()", "DUR003"),
    ("import time", "time.sleep(1)", "DUR004"),
    ("import os", "os.getenv('HOME')", "DUR005"),
    ("import os", "os.environ['HOME']", "DUR005"),
    ("import os", "os.environ.get('HOME')", "DUR005"),
    ("from os import environ", "environ['HOME']", "DUR005"),
    ("import os", "'HOME' in os.environ", "DUR005"),
    ("", "open('data.txt')", "DUR006"),
    ("from pathlib import Path", "Path('data.txt').read_text()", "DUR006"),
    ("import pathlib", "(pathlib.Path('d') / 'e').write_text('x')", "DUR006"),
    ("import socket", "socket.gethostname()", "DUR007"),
    ("import urllib.request", "urllib.request.urlopen('http://example.com')", "DUR007"),
    # Not installed here perhaps: the module's import statement is what names it.
    ("try:\n    import requests\nexcept ImportError:\n    pass", "requests.get('http://example.com')", "DUR007"),
    ("try:\n    import httpx\nexcept ImportError:\n    pass", "httpx.Client()", "DUR007"),
    ("import subprocess", "subprocess.run(['true'])", "DUR008"),
    ("from subprocess import check_output", "check_output(['true'])", "DUR008"),
    ("import os", "os.system('true')", "DUR008"),
]


@pytest.mark.parametrize(("imports", "expr", "code"), CASES, ids=[c[1] for c in CASES])
def test_each_call_is_found_at_its_line_and_column(make_module: MakeModule, imports: str, expr: str, code: str) -> None:
    """A non-deterministic call in the body is one finding, pointing at the file, the line and the call's column."""
    source = "\n".join([imports, "from durable import entrypoint", "", "", '@entrypoint(checkpointer="memory://")'])
    source += f"\ndef flow(x):\n    value = {expr}\n    return value\n"
    module = make_module(source)
    findings = check(module.flow)
    line = line_of(module, f"value = {expr}")
    assert codes_and_lines(findings) == [(code, line)]
    assert findings[0].path == module.__file__
    assert findings[0].col == len("    value = ") + 1


def test_the_message_says_what_was_called_and_what_to_do(make_module: MakeModule) -> None:
    module = make_module(
        """
        import time
        from time import time as now
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        def flow(x):
            return time.time(), now()
        """
    )
    first, second = check(module.flow)
    assert first.message == (
        "time.time() outside a task returns a different value on replay: call durable.now(), or move it into a @task"
    )
    assert second.message.startswith("now() (time.time) outside a task")
    assert str(first) == f"{module.__file__}:{first.line}:12: DUR001 {first.message}"


def test_sleeps_point_at_the_journaled_sleeps(make_module: MakeModule) -> None:
    module = make_module(
        """
        import asyncio
        import time
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        async def flow(x):
            await asyncio.sleep(5)
            time.sleep(1)
        """
    )
    found = check(module.flow)
    assert codes_and_lines(found) == [("DUR004", 7), ("DUR004", 8)]
    assert "await durable.asleep(seconds)" in found[0].message
    assert "durable.sleep(seconds)" in found[1].message


def test_an_environment_read_says_the_environment_may_differ(make_module: MakeModule) -> None:
    module = make_module(
        """
        import os
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        def flow(x):
            return os.getenv("REGION")
        """
    )
    [finding] = check(module.flow)
    assert "may differ on resume" in finding.message


def test_a_path_bound_to_a_local_name_is_followed(make_module: MakeModule) -> None:
    module = make_module(
        """
        from pathlib import Path
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        def flow(x):
            report = Path("out") / "report.txt"
            report.write_text(x)
            name = str(x)
            return name.strip()
        """
    )
    assert codes_and_lines(check(module.flow)) == [("DUR006", 7)]


def test_nested_plain_functions_and_lambdas_in_the_body_are_checked(make_module: MakeModule) -> None:
    module = make_module(
        """
        import random
        import time
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        def flow(x):
            def stamp():
                return time.time()
            pick = lambda: random.random()
            return stamp(), pick()
        """
    )
    assert codes_and_lines(check(module.flow)) == [("DUR001", 8), ("DUR002", 9)]


def test_imports_inside_the_body_are_resolved(make_module: MakeModule) -> None:
    module = make_module(
        """
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        def flow(x):
            import uuid as u
            return u.uuid4()
        """
    )
    assert codes_and_lines(check(module.flow)) == [("DUR003", 6)]


# -- helpers the body calls run during replay too -------------------------------------------------


def test_a_plain_helper_of_the_module_is_followed(make_module: MakeModule) -> None:
    module = make_module(
        """
        import datetime
        from durable import entrypoint

        def stamp():
            return label(datetime.datetime.now())

        def label(moment):
            return f"{moment}: {helper_of_helper()}"

        def helper_of_helper():
            import random
            return random.randint(1, 6)

        def unused():
            import time
            return time.time()

        @entrypoint(checkpointer="memory://")
        def flow(x):
            return stamp()
        """
    )
    assert codes_and_lines(check(module.flow)) == [("DUR001", 5), ("DUR002", 12)]


def test_recursive_helpers_are_walked_once(make_module: MakeModule) -> None:
    module = make_module(
        """
        import time
        from durable import entrypoint

        def ping(n):
            return pong(n - 1) if n else time.time()

        def pong(n):
            return ping(n)

        @entrypoint(checkpointer="memory://")
        def flow(x):
            return ping(3), ping(4)
        """
    )
    assert codes_and_lines(check(module.flow)) == [("DUR001", 5)]


def test_tasks_and_other_entrypoints_called_by_the_body_are_not_followed(make_module: MakeModule) -> None:
    module = make_module(
        """
        import time
        import durable
        from durable import entrypoint, task

        @task
        def stamp():
            return time.time()

        @task(name="stamp2")
        def stamp2():
            return time.time()

        @durable.task
        def stamp3():
            return time.time()

        @entrypoint(checkpointer="memory://")
        def other(x):
            return time.time()

        @entrypoint(checkpointer="memory://")
        def flow(x):
            return stamp().result(), stamp2().result(), stamp3().result(), other.invoke(x)
        """
    )
    assert check(module.flow) == []


# -- what stays silent ------------------------------------------------------------------------------


def test_the_same_calls_inside_tasks_are_fine(make_module: MakeModule) -> None:
    module = make_module(
        """
        import os
        import random
        import time
        import uuid
        from datetime import datetime
        import durable
        from durable import entrypoint, task

        @entrypoint(checkpointer="memory://")
        def flow(x):
            @task
            def read():
                return time.time(), datetime.now(), random.random(), uuid.uuid4(), os.getenv("X"), open("f")

            @durable.task(name="later")
            async def later():
                time.sleep(1)

            return read().result(), later().result()
        """
    )
    assert check(module.flow) == []


def test_durables_own_helpers_are_fine(make_module: MakeModule) -> None:
    module = make_module(
        """
        import durable
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        async def flow(x):
            durable.sleep(1)
            await durable.asleep(1)
            return durable.now(), durable.uuid4(), durable.random()
        """
    )
    assert check(module.flow) == []


def test_names_of_the_users_own_are_not_mistaken(make_module: MakeModule) -> None:
    module = make_module(
        """
        from time import time
        from durable import entrypoint

        def time():  # rebinds the imported name: this is the user's own
            return 42

        def today():
            return "monday"

        @entrypoint(checkpointer="memory://")
        def flow(random, clock):
            import datetime
            datetime = clock
            return time(), today(), random.random(), clock.now(), datetime.now()
        """
    )
    assert check(module.flow) == []


def test_unresolvable_and_harmless_calls_are_fine(make_module: MakeModule) -> None:
    module = make_module(
        """
        import os
        import random
        import time
        import uuid
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        def flow(x):
            rng = random.Random(x["seed"])  # seeded: the same numbers every time
            os.environ["MODE"] = "replay"   # a write, not a read
            stamp = time.strftime("%Y", time.gmtime(x["at"]))  # given a time: pure
            return rng.random(), x.time(), uuid.uuid5(uuid.NAMESPACE_DNS, "a"), os.path.join("a", "b"), stamp
        """
    )
    assert check(module.flow) == []


def test_suppression_comments(make_module: MakeModule) -> None:
    module = make_module(
        """
        import os
        import time
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        def flow(x):
            a = time.time()  # durable: ignore
            b = time.time()  # durable: ignore[DUR001]
            c = time.time(), os.getenv("X")  # durable: ignore[DUR005]
            d = time.time(), os.getenv("X")  # durable: ignore[dur001, DUR005]
            return a, b, c, d
        """
    )
    assert codes_and_lines(check(module.flow)) == [("DUR001", 9)]


# -- iterating a set while calling tasks -----------------------------------------------------------


def test_calling_tasks_while_iterating_a_set_is_found(make_module: MakeModule) -> None:
    module = make_module(
        """
        from durable import entrypoint, task

        @task
        def fetch(name):
            return name

        @entrypoint(checkpointer="memory://")
        def flow(names):
            first = [fetch(n) for n in {"a", "b"}]
            for n in set(names):
                fetch(n).result()
            for n in sorted(set(names)):       # ordered: fine
                fetch(n).result()
            for n in {1, 2, 3}:                # small ints iterate the same everywhere
                fetch(str(n)).result()
            return [n.upper() for n in set(names)]   # no task called: the order does not reach the journal
        """
    )
    found = check(module.flow)
    assert codes_and_lines(found) == [("DUR009", 9), ("DUR009", 10)]
    assert "sorted(...)" in found[0].message


# -- targets ----------------------------------------------------------------------------------------


def test_targets_by_name(make_module: MakeModule) -> None:
    module = make_module(
        """
        import time
        from durable import entrypoint

        @entrypoint(checkpointer="memory://")
        def one(x):
            return time.time()

        @entrypoint(checkpointer="memory://")
        def two(x):
            return time.monotonic()
        """
    )
    name = module.__name__
    assert codes_and_lines(check(f"{name}:one")) == [("DUR001", 6)]
    assert codes_and_lines(check(name)) == [("DUR001", 6), ("DUR001", 10)]
    with pytest.raises(ConfigurationError, match="cannot import"):
        check("no_such_module_anywhere:flow")
    with pytest.raises(ConfigurationError, match="not an entrypoint"):
        check(f"{name}:missing")
    with pytest.raises(ConfigurationError, match="cannot check"):
        check(42)


def test_an_entrypoint_defined_in_a_function_is_found(make_module: MakeModule) -> None:
    module = make_module(
        """
        from durable import entrypoint

        def build():
            import time

            @entrypoint(checkpointer="memory://")
            def flow(x):
                return time.time()

            return flow

        flow = build()
        """
    )
    assert codes_and_lines(check(module.flow)) == [("DUR001", 8)]


# -- the command ------------------------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "durable", "check", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


CLI_MODULE = """
import time
from durable import entrypoint, task

@task
def stamp():
    return time.time()

@entrypoint(checkpointer="memory://")
def dirty(x):
    return time.time()

@entrypoint(checkpointer="memory://")
def clean(x):
    return stamp().result()
"""


@pytest.mark.subprocess
def test_cli_reports_findings_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "cli_flows.py").write_text(CLI_MODULE)
    result = run_cli(tmp_path, "cli_flows:dirty")
    assert result.returncode == 1, result.stderr
    first, summary = result.stdout.splitlines()
    assert first.startswith(f"{tmp_path / 'cli_flows.py'}:11:12: DUR001 time.time() outside a task")
    assert summary == "Found 1 non-deterministic call in 1 entrypoint."


@pytest.mark.subprocess
def test_cli_exits_0_when_clean(tmp_path: Path) -> None:
    (tmp_path / "cli_flows.py").write_text(CLI_MODULE)
    result = run_cli(tmp_path, "cli_flows:clean")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "All clear: 1 entrypoint checked, nothing found.\n"


@pytest.mark.subprocess
def test_cli_json(tmp_path: Path) -> None:
    (tmp_path / "cli_flows.py").write_text(CLI_MODULE)
    result = run_cli(tmp_path, "--json", "cli_flows")
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == [
        {
            "path": str(tmp_path / "cli_flows.py"),
            "line": 11,
            "col": 12,
            "code": "DUR001",
            "message": "time.time() outside a task returns a different value on replay: call durable.now(), "
            "or move it into a @task",
        }
    ]
    clean = run_cli(tmp_path, "--json", "cli_flows:clean")
    assert (clean.returncode, json.loads(clean.stdout)) == (0, [])


@pytest.mark.subprocess
def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    unknown = run_cli(tmp_path, "no_such_module_anywhere:flow")
    assert unknown.returncode == 2
    assert unknown.stdout == ""
    assert "durable check: cannot import 'no_such_module_anywhere'" in unknown.stderr
    assert run_cli(tmp_path).returncode == 2  # no target at all: argparse's usage error
