"""A static determinism check of entrypoint bodies: `check` (and ``durable check``).

On resume an entrypoint's body runs again from the top while recorded task results replay, so whatever the body
computes outside tasks must come out the same every time. This module reads the body's source and reports the
calls that cannot: each finding names the call and what to do instead. The codes:

* ``DUR001`` reads the clock (``time.time()``, ``time.monotonic()``, ``datetime.now()``, ``date.today()``...):
  call ``durable.now()``, or move it into a task.
* ``DUR002`` draws random numbers (any function of ``random``, an unseeded ``random.Random()``, ``secrets.*``,
  ``os.urandom``): call ``durable.random()``, or move it into a task.
* ``DUR003`` makes a random id (``uuid.uuid1()``, ``uuid.uuid4()``): call ``durable.uuid4()``.
* ``DUR004`` sleeps (``time.sleep``, ``asyncio.sleep``): every replay would wait again in full; call
  ``durable.sleep()`` / ``await durable.asleep()``, which journal the wake-up time.
* ``DUR005`` reads the environment (``os.getenv``, ``os.environ[...]``, ``os.environ.get``): it may differ on
  resume, in another process or on another machine.
* ``DUR006`` does file I/O (``open()``, ``io.open()``, ``pathlib.Path(...).read_text()`` and the like).
* ``DUR007`` does network I/O (``requests``, ``httpx``, ``aiohttp``, ``urllib.request``, ``http.client``,
  ``socket``).
* ``DUR008`` runs a command (``subprocess.*``, ``os.system``, ``os.popen``, ``asyncio.create_subprocess_*``).
* ``DUR009`` calls tasks while iterating over a set: string hashing differs per process, so the tasks would be
  called in another order on resume; iterate ``sorted(...)`` instead.

What is checked: the entrypoint's body and nested plain functions, and the plain functions of the same module that
it calls (recursively: they run during replay too), never the bodies of tasks or of other entrypoints. Names are
resolved through the module's imports, cross-checked against its live globals, so ``from time import time as now``
is caught and a function of your own named ``time`` is not; a call whose target cannot be resolved is never
reported. Add ``# durable: ignore`` (or ``# durable: ignore[DUR001,DUR005]``) to a line to silence it.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib.util
import inspect
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._check_rules import (
    _EXACT,
    _FILE,
    _PATH_CLASSES,
    _PATH_IO,
    _PATH_MESSAGE,
    _SET_ORDER,
    _SUPPRESS,
    _rule,
)
from .errors import ConfigurationError

__all__ = ["Finding", "check"]


@dataclass(frozen=True, order=True)
class Finding:
    """One non-deterministic call outside a task. ``line`` and ``col`` are 1-based, as editors show them."""

    path: str
    line: int
    col: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"


# -- what is flagged --------------------------------------------------------------------------------


def check(target: Any) -> list[Finding]:
    """Report the calls in an entrypoint's body that would behave differently on replay.

    ``target`` is an `Entrypoint` (or a plain function), or a string: ``"module:entrypoint"``, or ``"module"`` for
    all the module's top-level entrypoints (the module is imported). Returns the findings sorted by place; an
    empty list means nothing was found. Raises `ConfigurationError` for a target it cannot import or read.
    """
    if isinstance(target, str):
        from ._cli import load_entrypoints

        targets: list[Any] = load_entrypoints([target])
    else:
        targets = [target]
    found: set[Finding] = set()
    for one in targets:
        found.update(_check_function(_body_of(one)))
    return sorted(found)


def _body_of(target: Any) -> types.FunctionType:
    fn = inspect.unwrap(target) if callable(target) else None
    if not isinstance(fn, types.FunctionType):
        raise ConfigurationError(f"cannot check {target!r}: pass an entrypoint, a function or 'module:entrypoint'")
    return fn


def _check_function(fn: types.FunctionType) -> list[Finding]:
    path = inspect.getsourcefile(fn)
    module = sys.modules.get(fn.__module__)
    try:
        if path is None:
            raise OSError("no source file")
        lines, _ = inspect.findsource(fn)  # the whole file, via linecache: real line numbers
    except (OSError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the source of {fn.__qualname__}: {exc}") from exc
    source = "".join(lines)
    tree = ast.parse(source, filename=path)
    node = _find_def(tree, fn)
    if node is None:
        raise ConfigurationError(
            f"cannot find {fn.__qualname__} in {path} (was the file edited since it was imported?)"
        )
    checker = _Checker(path, lines, tree, module)
    checker.check_entrypoint(node)
    return checker.findings


_Def = ast.FunctionDef | ast.AsyncFunctionDef


def _find_def(tree: ast.Module, fn: types.FunctionType) -> _Def | None:
    """The definition of ``fn``: its code starts at its first decorator, or at ``def`` when it has none."""
    first = fn.__code__.co_firstlineno
    for node in ast.walk(tree):
        if isinstance(node, _Def) and node.name == fn.__name__:
            starts = [node.lineno] + [d.lineno for d in node.decorator_list[:1]]
            if first in starts:
                return node
    return None


@dataclass
class _Scope:
    """What a function's own names mean: those bound locally hide the module's."""

    imports: dict[str, str] = field(default_factory=dict)
    local: set[str] = field(default_factory=set)
    defs: dict[str, _Def] = field(default_factory=dict)  # the functions defined in it
    assigned: dict[str, list[ast.expr]] = field(default_factory=dict)  # what its names are assigned
    rebound: set[str] = field(default_factory=set)  # imported, and assigned too: which one a use sees is unclear


class _Checker:
    def __init__(self, path: str, lines: Sequence[str], tree: ast.Module, module: types.ModuleType | None) -> None:
        self.path = path
        self.lines = lines
        self.module = module
        self.globals: dict[str, Any] = vars(module) if module is not None else {}
        self.imports = _imports(tree.body, module.__name__ if module is not None else "")
        self.defs: dict[str, _Def] = {}
        for stmt in tree.body:
            if isinstance(stmt, _Def):
                self.defs[stmt.name] = stmt  # the last definition is the one the module holds
        self.parents: dict[ast.AST, ast.AST] = {
            child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)
        }
        self.visited: set[ast.AST] = set()
        self.findings: list[Finding] = []

    # -- walking ----------------------------------------------------------------------------------

    def check_entrypoint(self, node: _Def) -> None:
        scopes: list[_Scope] = []
        parent = self.parents.get(node)
        while parent is not None:  # an entrypoint defined in a function sees that function's names too
            if isinstance(parent, _Def):
                scopes.insert(0, _scope_of(parent, self.module_name))
            parent = self.parents.get(parent)
        self.visit_function(node, scopes)

    @property
    def module_name(self) -> str:
        return self.module.__name__ if self.module is not None else ""

    def visit_function(self, node: _Def | ast.Lambda, outer: list[_Scope]) -> None:
        if node in self.visited:
            return
        self.visited.add(node)
        scopes = [*outer, _scope_of(node, self.module_name)]
        body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
        for stmt in body:
            self.visit(stmt, scopes)

    def visit(self, node: ast.AST, scopes: list[_Scope]) -> None:
        if isinstance(node, _Def | ast.ClassDef):
            if any(self.is_task_decorator(d, scopes) for d in node.decorator_list):
                return  # a task's body runs once and is journaled: anything goes there
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    self.visit(stmt, scopes)
            else:
                self.visit_function(node, scopes)
            return
        if isinstance(node, ast.Lambda):
            self.visit_function(node, scopes)
            return
        if isinstance(node, ast.Call):
            self.visit_call(node, scopes)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            name = self.resolve(node.value, scopes)
            if name in ("os.environ", "os.environb"):
                self.report(node, f"{name}[...]", _rule(name, None))
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            for operand in node.comparators:
                name = self.resolve(operand, scopes)
                if name in ("os.environ", "os.environb"):
                    self.report(node, f"'...' in {name}", _rule(name, None))
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.check_set_order(node.iter, [*node.body, *node.orelse], scopes)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for gen in node.generators:
                self.check_set_order(gen.iter, [*elements, *gen.ifs], scopes)
        for child in ast.iter_child_nodes(node):
            self.visit(child, scopes)

    def visit_call(self, call: ast.Call, scopes: list[_Scope]) -> None:
        func = call.func
        name = self.resolve(func, scopes)
        if name is not None:
            written, shown = ast.unparse(func), name.removeprefix("builtins.")
            self.report(call, f"{written}()" if written == shown else f"{written}() ({shown})", _rule(name, call))
            return
        if isinstance(func, ast.Attribute) and func.attr in _PATH_IO and self.is_path(func.value, scopes):
            self.report(call, f"Path.{func.attr}()", (_FILE, _PATH_MESSAGE))
            return
        helper = self.helper(func, scopes)
        if helper is not None:
            # A plain function of the module runs during replay like the body itself (module scope only).
            self.visit_function(helper, [])

    def check_set_order(self, iterable: ast.expr, body: Iterable[ast.AST], scopes: list[_Scope]) -> None:
        if not self.is_unordered(iterable, scopes):
            return
        for stmt in body:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Call) and self.is_task_call(sub.func, scopes):
                    self.report(
                        iterable,
                        "iterating a set",
                        (
                            _SET_ORDER,
                            "while calling tasks calls them in an order that can differ on resume (string hashing "
                            "differs per process): iterate sorted(...) instead",
                        ),
                    )
                    return

    # -- what names mean --------------------------------------------------------------------------

    def resolve(self, expr: ast.expr, scopes: list[_Scope]) -> str | None:
        """The qualified name (``time.time``) ``expr`` refers to, or None when that cannot be told."""
        if isinstance(expr, ast.Attribute):
            base = self.resolve(expr.value, scopes)
            return None if base is None else f"{base}.{expr.attr}"
        if not isinstance(expr, ast.Name):
            return None
        name = expr.id
        for scope in reversed(scopes):
            if name in scope.imports:
                return None if name in scope.rebound else scope.imports[name]
            if name in scope.local:
                return None
        if name in self.imports:
            qualified = self.imports[name]
            if name in self.globals and not _same(self.globals[name], qualified):
                return None  # rebound after the import (a function of the user's own with that name)
            return qualified
        if name in self.globals:
            value = self.globals[name]
            if isinstance(value, types.ModuleType):
                return value.__name__
            return _known_name(value)
        if name not in self.defs and hasattr(builtins, name):
            return f"builtins.{name}"
        return None

    def is_task_decorator(self, decorator: ast.expr, scopes: list[_Scope]) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = self.resolve(target, scopes)
        if name is not None:
            return name in ("durable.task", "durable._task.task")
        # Unresolvable but spelled like a task: skipping its body is the safe mistake (no false alarm).
        return (isinstance(target, ast.Name) and target.id == "task") or (
            isinstance(target, ast.Attribute) and target.attr == "task"
        )

    def is_task_call(self, func: ast.expr, scopes: list[_Scope]) -> bool:
        if isinstance(func, ast.Name):
            for scope in reversed(scopes):
                if func.id in scope.defs:
                    return any(self.is_task_decorator(d, scopes) for d in scope.defs[func.id].decorator_list)
                if func.id in scope.local or func.id in scope.imports:
                    return False
            return _is_task(self.globals.get(func.id))
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            value = self.globals.get(func.value.id)
            return isinstance(value, types.ModuleType) and _is_task(getattr(value, func.attr, None))
        return False

    def is_unordered(self, expr: ast.expr, scopes: list[_Scope]) -> bool:
        if isinstance(expr, ast.Set):
            # Ints hash to themselves (no per-process salt): such a set iterates the same way everywhere.
            return not all(isinstance(e, ast.Constant) and type(e.value) is int for e in expr.elts)
        if isinstance(expr, ast.SetComp):
            return True
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
            return self.resolve(expr.func, scopes) in ("builtins.set", "builtins.frozenset")
        return False

    def is_path(self, expr: ast.expr, scopes: list[_Scope]) -> bool:
        """A pathlib path built right there (``Path(p)``, ``Path(p) / "x"``) or bound to a local name."""
        if isinstance(expr, ast.Call):
            return self.resolve(expr.func, scopes) in _PATH_CLASSES
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return self.is_path(expr.left, scopes)
        if isinstance(expr, ast.Name):
            for depth in range(len(scopes) - 1, -1, -1):
                values = scopes[depth].assigned.get(expr.id)
                if expr.id in scopes[depth].local:
                    # A path only if every assignment makes one (the scopes it sees stop short of itself: no loops).
                    inner = [*scopes[:depth], _Scope(imports=scopes[depth].imports, local=scopes[depth].local)]
                    return bool(values) and all(self.is_path(v, inner) for v in values or [])
        return False

    def helper(self, func: ast.expr, scopes: list[_Scope]) -> _Def | None:
        if not isinstance(func, ast.Name) or any(func.id in s.local or func.id in s.imports for s in scopes):
            return None
        node = self.defs.get(func.id)
        value = self.globals.get(func.id)
        # type(), not isinstance: a task's wrapper passes itself off as the function it wraps.
        if node is None or type(value) is not types.FunctionType or value.__module__ != self.module_name:
            return None
        if any(self.is_task_decorator(d, []) for d in node.decorator_list):
            return None
        return node

    # -- reporting --------------------------------------------------------------------------------

    def report(self, node: ast.expr, what: str, rule: tuple[str, str] | None) -> None:
        if rule is None:
            return
        code, tail = rule
        if self.suppressed(node.lineno, code):
            return
        self.findings.append(Finding(self.path, node.lineno, node.col_offset + 1, code, f"{what} {tail}"))

    def suppressed(self, line: int, code: str) -> bool:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        match = _SUPPRESS.search(text)
        if match is None:
            return False
        codes = match.group("codes")
        return codes is None or code in {c.strip().upper() for c in codes.split(",")}


def _imports(body: Iterable[ast.stmt], package_of: str) -> dict[str, str]:
    """Local name -> qualified name, for the import statements of a body (not of the functions in it)."""
    found: dict[str, str] = {}
    for stmt in _statements(body):
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    found[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    found[top] = top  # `import os.path` binds `os`
        elif isinstance(stmt, ast.ImportFrom):
            module = stmt.module or ""
            if stmt.level:
                try:
                    module = importlib.util.resolve_name("." * stmt.level + module, _package(package_of))
                except (ImportError, ValueError):
                    continue
            for alias in stmt.names:
                if alias.name != "*":
                    found[alias.asname or alias.name] = f"{module}.{alias.name}"
    return found


def _package(module_name: str) -> str:
    module = sys.modules.get(module_name)
    package = getattr(module, "__package__", None)
    return package if isinstance(package, str) else module_name.rpartition(".")[0]


def _statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of a body, into its if/try/with/loop blocks but not into function or class definitions."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, _Def | ast.ClassDef):
            continue
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list):
                yield from _statements(inner)
        for handler in getattr(stmt, "handlers", []):
            yield from _statements(handler.body)


def _scope_of(node: _Def | ast.Lambda, module_name: str) -> _Scope:
    scope = _Scope()
    args = node.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            scope.local.add(arg.arg)
    if isinstance(node, ast.Lambda):
        return scope
    scope.imports = _imports(node.body, module_name)
    declared_global: set[str] = set()
    for sub in _own_nodes(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store | ast.Del):
            scope.local.add(sub.id)
        elif isinstance(sub, _Def | ast.ClassDef):
            scope.local.add(sub.name)
            if not isinstance(sub, ast.ClassDef):
                scope.defs[sub.name] = sub
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            scope.local.add(sub.name)
        elif isinstance(sub, ast.Global | ast.Nonlocal):
            declared_global.update(sub.names)
        elif isinstance(sub, ast.Assign):
            for target in sub.targets:
                if isinstance(target, ast.Name):
                    scope.assigned.setdefault(target.id, []).append(sub.value)
        elif (
            isinstance(sub, ast.AnnAssign | ast.AugAssign | ast.NamedExpr)
            and isinstance(sub.target, ast.Name)
            and sub.value is not None
        ):
            scope.assigned.setdefault(sub.target.id, []).append(sub.value)
    scope.local -= declared_global
    scope.rebound = scope.local & set(scope.imports)
    scope.local -= set(scope.imports)
    return scope


def _own_nodes(node: _Def) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of the functions, lambdas and classes defined in it."""
    stack: list[ast.AST] = list(node.body)
    while stack:
        sub = stack.pop()
        yield sub
        if not isinstance(sub, _Def | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(sub))


def _same(value: Any, qualified: str) -> bool:
    """Whether the live ``value`` is what ``qualified`` names (True when that cannot be looked up without importing)."""
    expected = _lookup(qualified)
    return expected is _MISSING or value is expected or _equal(value, expected)


_MISSING = object()


def _lookup(qualified: str) -> Any:
    """The object a qualified name refers to, from modules already imported (importing runs code: never here)."""
    parts = qualified.split(".")
    for cut in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        value: Any = module
        for attr in parts[cut:]:
            value = getattr(value, attr, _MISSING)
            if value is _MISSING:
                break
        return value
    return _MISSING


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an object whose __eq__ misbehaves is simply not the same
        return False


@functools.lru_cache(maxsize=1)
def _known_objects() -> tuple[tuple[Any, str], ...]:
    """The flagged functions by identity, for names bound without an import we can read (``now = time.time``)."""
    pairs = []
    for qualified in _EXACT:
        value = _lookup(qualified)
        if value is not _MISSING and callable(value):
            pairs.append((value, qualified))
    return tuple(pairs)


def _known_name(value: Any) -> str | None:
    if not callable(value) or isinstance(value, type):
        return None
    for known, qualified in _known_objects():
        if value is known or _equal(value, known):
            return qualified
    return None


def _is_task(value: Any) -> bool:
    from ._task import _call_task

    wrapper = getattr(value, "_self_wrapper", None) if value is not None else None
    return isinstance(wrapper, functools.partial) and wrapper.func is _call_task
