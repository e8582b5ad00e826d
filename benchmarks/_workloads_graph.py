"""Graph API rows: the same `StateGraph` programs on durable (`durable.graph`, SQLiteStore) and on LangGraph
(`langgraph.graph`, SqliteSaver), side by side in one run.

Three workloads, each its own `--only` name:

- ``graph-linear``: one node that increments a counter and a conditional edge back to itself until the counter
  reaches N (1,000; 200 with ``--quick``), then END: N supersteps in one invoke, µs per superstep.
- ``graph-fanout``: START's conditional edge returns 100 ``Send("work", i)``; ``work`` returns ``{"out": [i]}``
  into an ``Annotated[list, operator.add]`` key, then END: µs per Send task (the whole invoke / 100).
- ``graph-chat-bytes``: journal bytes per step of a chat that gains one message (~100 bytes pickled) a step,
  (a) in one invoke whose node loops N supersteps, (b) over N invokes on one thread, each bringing one message
  in its input. Bytes after 250, 500 and 1,000 steps (100, 200, 400 with ``--quick``), so growth shows.

Every program is written once (`linear_graph`, `fanout_graph`, ...) and built with each library's
`StateGraph`, `START`, `END` and `Send`. Both sides: a fresh SQLite file per sample in the same temp dir, WAL +
synchronous=NORMAL (LangGraph's connection from `langgraph_workloads.lg_connect`, checked after every run),
``durability="sync"`` passed to every invoke, a warm-up invoke on another thread before the timed one.

As in `langgraph_workloads`, a row's value is LangGraph's and its floor durable's, so the ratio is
LangGraph / durable. langgraph is imported only when one of these workloads runs (they are registered after
the `langgraph` one); without it the rows are durable's alone (no ratio) and a line under the table says so.
"""

from __future__ import annotations

import gc
import operator
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypedDict

from _common import RAN, Config, Row, check, close_store, fail_row, fresh_dir, make_sqlite, median

DURABILITY = "sync"
LINEAR_STEPS = 1_000
LINEAR_STEPS_QUICK = 200
FANOUT_WIDTH = 100
CHAT_POINTS = (250, 500, 1_000)
CHAT_POINTS_QUICK = (100, 200, 400)
BENCH_EXTRA = "pip install durable-exec[bench]"


@dataclass(frozen=True)
class Lib:
    """One library's Graph API: what the programs below are built with."""

    name: str
    StateGraph: Any
    START: str
    END: str
    Send: Any


def durable_lib() -> Lib:
    from durable import Send
    from durable.graph import END, START, StateGraph

    return Lib("durable", StateGraph, START, END, Send)


def langgraph_lib(cfg: Config) -> tuple[Lib, ModuleType] | None:
    """LangGraph's Graph API and `langgraph_workloads` (its connection helpers), or None with a note."""
    try:
        import langgraph_workloads as lgw
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import Send
    except ImportError as exc:
        note = f"no LangGraph Graph-API comparison ({exc}): `{BENCH_EXTRA}` adds it; the graph rows are durable's"
        if note not in cfg.notes:
            cfg.notes.append(note)
        return None
    return Lib("LangGraph", StateGraph, START, END, Send), lgw


def section(cfg: Config, title: str, lg: tuple[Lib, ModuleType] | None) -> str:
    if lg is None:
        return f"Graph API, durable only: {title} (SQLiteStore NORMAL, durability={DURABILITY})"
    from importlib.metadata import version

    return (
        f"Graph API side by side [lg]: {title}; durable SQLiteStore vs LangGraph {version('langgraph')} StateGraph"
        f" + SqliteSaver {version('langgraph-checkpoint-sqlite')}, SQLite NORMAL, durability={DURABILITY}"
    )


def graph_config(thread_id: str, steps: int = 0) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
    if steps:
        config["recursion_limit"] = steps + 10
    return config


# ---------------------------------------------------------------------------
# The programs, written once for both libraries.
# ---------------------------------------------------------------------------


class CounterState(TypedDict):
    counter: int


class FanoutState(TypedDict):
    out: Annotated[list[int], operator.add]


class ChatState(TypedDict, total=False):
    messages: Annotated[list[dict[str, str]], operator.add]
    last: int


def linear_graph(lib: Lib, n: int) -> Any:
    """START -> inc -> (inc until counter == n) -> END: n supersteps of one node each."""

    def inc(state: CounterState) -> dict[str, int]:
        RAN.append(state["counter"])
        return {"counter": state["counter"] + 1}

    def route(state: CounterState) -> str:
        return lib.END if state["counter"] >= n else "inc"

    builder = lib.StateGraph(CounterState)
    builder.add_node("inc", inc)
    builder.add_edge(lib.START, "inc")
    builder.add_conditional_edges("inc", route, ["inc", lib.END])
    return builder


def fanout_graph(lib: Lib, n: int) -> Any:
    """START --[Send("work", i) for i < n]--> work -> END; each work task returns {"out": [i]}."""

    def work(i: int) -> dict[str, list[int]]:
        RAN.append(i)
        return {"out": [i]}

    def spread(state: FanoutState) -> list[Any]:
        return [lib.Send("work", i) for i in range(n)]

    builder = lib.StateGraph(FanoutState)
    builder.add_node("work", work)
    builder.add_conditional_edges(lib.START, spread, ["work"])
    builder.add_edge("work", lib.END)
    return builder


def message(i: int) -> dict[str, str]:
    """A chat message of about sixty characters of text (~100 bytes pickled)."""
    return {"role": "user", "content": f"message number {i:04d}, about sixty characters of text........"}


def chat_loop_graph(lib: Lib, n: int) -> Any:
    """(a) START -> chat -> (chat until n messages) -> END: each superstep appends one message."""

    def chat(state: ChatState) -> dict[str, Any]:
        return {"messages": [message(len(state["messages"]))]}

    def route(state: ChatState) -> str:
        return lib.END if len(state["messages"]) >= n else "chat"

    builder = lib.StateGraph(ChatState)
    builder.add_node("chat", chat)
    builder.add_edge(lib.START, "chat")
    builder.add_conditional_edges("chat", route, ["chat", lib.END])
    return builder


def chat_turn_graph(lib: Lib) -> Any:
    """(b) START -> ack -> END; the invoke's input brings the one message, `ack` records the count (an int)."""

    def ack(state: ChatState) -> dict[str, Any]:
        return {"last": len(state["messages"])}

    builder = lib.StateGraph(ChatState)
    builder.add_node("ack", ack)
    builder.add_edge(lib.START, "ack")
    builder.add_edge("ack", lib.END)
    return builder


# ---------------------------------------------------------------------------
# Checkpointers: a fresh SQLite file each, closed and removed afterwards.
# ---------------------------------------------------------------------------


class Saver:
    """A fresh SQLite file in its own directory with `lib`'s checkpointer on it: SQLiteStore(NORMAL) for
    durable, SqliteSaver over `lg_connect` (WAL + NORMAL) for LangGraph."""

    def __init__(self, cfg: Config, lib: Lib, tag: str, lgw: ModuleType | None = None) -> None:
        self.lib = lib
        self.dir = fresh_dir(cfg, f"{tag}-{lib.name.lower()}")
        self.path = self.dir / f"{lib.name.lower()}.db"
        self.lgw = lgw
        self.conn: sqlite3.Connection | None = None
        if lgw is None:
            self.checkpointer: Any = make_sqlite(self.path, "NORMAL")
        else:
            from langgraph.checkpoint.sqlite import SqliteSaver

            self.conn = lgw.lg_connect(self.path)
            self.checkpointer = SqliteSaver(self.conn)

    def compile(self, builder: Any, name: str | None = None) -> Any:
        return builder.compile(checkpointer=self.checkpointer, name=name)

    def check_pragmas(self) -> None:
        if self.lgw is not None and self.conn is not None:
            self.lgw.check_pragmas(self.conn)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        else:
            close_store(self.checkpointer)
        shutil.rmtree(self.dir, ignore_errors=True)


def timed_invoke(graph: Any, inp: Any, config: dict[str, Any]) -> tuple[Any, float]:
    RAN.clear()
    gc.collect()
    t0 = time.perf_counter()
    out = graph.invoke(inp, config, durability=DURABILITY)
    return out, time.perf_counter() - t0


def side_by_side(
    cfg: Config, lg: tuple[Lib, ModuleType] | None, reps: int, sample: Any
) -> tuple[list[float], list[float], str]:
    """`reps` samples of `sample(cfg, lib, lgw)` for durable and for LangGraph, alternating (durable first);
    LangGraph's list is empty without langgraph."""
    ours = durable_lib()
    if lg is None:
        return [sample(cfg, ours, None) for _ in range(reps)], [], ""
    theirs, lgw = lg
    result: tuple[list[float], list[float], str] = lgw.side_by_side(
        reps, lambda: sample(cfg, ours, None), lambda: sample(cfg, theirs, lgw)
    )
    return result


def pair_row(sec: str, label: str, n: int, unit: str, durable_s: list[float], lg_s: list[float]) -> Row:
    """Seconds per invoke -> µs per unit (n units an invoke). [lg] convention: value = LangGraph's median,
    floor = durable's; durable's alone without LangGraph."""
    durable_s = [s / n * 1e6 for s in durable_s]
    lg_s = [s / n * 1e6 for s in lg_s]
    if not lg_s:
        return Row(sec, label, f"{n:,}", median(durable_s), unit, None, durable_s)
    return Row(sec, label, f"{n:,}", median(lg_s), unit, median(durable_s), lg_s, durable_s, "[lg]")


# ---------------------------------------------------------------------------
# graph-linear
# ---------------------------------------------------------------------------


def linear_sample(cfg: Config, lib: Lib, lgw: ModuleType | None, n: int) -> float:
    """Seconds for one invoke running n supersteps (after a one-superstep warm-up on another thread)."""
    saver = Saver(cfg, lib, "graph-linear", lgw)
    try:
        graph = saver.compile(linear_graph(lib, n))
        warm = graph.invoke({"counter": n - 1}, graph_config("warmup", n), durability=DURABILITY)
        check(warm == {"counter": n}, f"{lib.name} linear warm-up returned {warm!r}")
        out, dt = timed_invoke(graph, {"counter": 0}, graph_config("t1", n))
        check(out == {"counter": n}, f"{lib.name} linear graph returned {out!r}, expected counter {n}")
        check(list(range(n)) == RAN, f"{lib.name} linear graph ran its node {len(RAN)} times, expected {n}")
        saver.check_pragmas()
        return dt
    finally:
        RAN.clear()
        saver.close()


def bench_graph_linear(cfg: Config) -> list[Row]:
    lg = langgraph_lib(cfg)
    n = LINEAR_STEPS_QUICK if cfg.quick else LINEAR_STEPS
    sec = section(cfg, "linear loop, one node a superstep", lg)
    label = "linear graph: node -> itself until counter == N, one invoke"
    try:
        ours, theirs, note = side_by_side(cfg, lg, cfg.repeat, lambda c, lib, lgw: linear_sample(c, lib, lgw, n))
        return [pair_row(sec, label + note, n, "µs/step", ours, theirs)]
    except Exception as exc:
        return [fail_row(cfg, Row(sec, label, f"{n:,}"), exc)]


# ---------------------------------------------------------------------------
# graph-fanout
# ---------------------------------------------------------------------------


def fanout_sample(cfg: Config, lib: Lib, lgw: ModuleType | None) -> float:
    """Seconds for one invoke fanning out to FANOUT_WIDTH `work` tasks."""
    n = FANOUT_WIDTH
    saver = Saver(cfg, lib, "graph-fanout", lgw)
    try:
        graph = saver.compile(fanout_graph(lib, n))
        # warm up with the same width: the pools' threads exist before the timed run
        warm = graph.invoke({"out": []}, graph_config("warmup"), durability=DURABILITY)
        check(warm == {"out": list(range(n))}, f"{lib.name} fan-out warm-up returned {warm!r}")
        out, dt = timed_invoke(graph, {"out": []}, graph_config("t1"))
        check(out == {"out": list(range(n))}, f"{lib.name} fan-out returned {out!r}")
        check(sorted(RAN) == list(range(n)), f"{lib.name} fan-out ran {len(RAN)} work tasks, expected {n}")
        saver.check_pragmas()
        return dt
    finally:
        RAN.clear()
        saver.close()


def bench_graph_fanout(cfg: Config) -> list[Row]:
    lg = langgraph_lib(cfg)
    sec = section(cfg, f"{FANOUT_WIDTH}-way Send fan-out", lg)
    label = f"Send fan-out: START -> {FANOUT_WIDTH} x Send('work', i) -> END, per Send task"
    try:
        # a few ms each and noisy (thread scheduling): take more samples, as the fan-out rows do
        ours, theirs, note = side_by_side(cfg, lg, 3 * cfg.repeat, fanout_sample)
        return [pair_row(sec, label + note, FANOUT_WIDTH, "µs/task", ours, theirs)]
    except Exception as exc:
        return [fail_row(cfg, Row(sec, label, f"{FANOUT_WIDTH:,}"), exc)]


# ---------------------------------------------------------------------------
# graph-chat-bytes
# ---------------------------------------------------------------------------


def blob_bytes(conn: sqlite3.Connection) -> int:
    """Sum of length() over every BLOB-declared column of every table: the serialized values stored."""
    total = 0
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for _, column, decl, *_ in conn.execute(f'PRAGMA table_info("{table}")'):
            if str(decl).upper() == "BLOB":
                total += conn.execute(f'SELECT coalesce(sum(length("{column}")), 0) FROM "{table}"').fetchone()[0]
    return total


def measure(path: Path) -> tuple[int, int]:
    """(file bytes after VACUUM = page_count * page_size, blob bytes), from a connection of our own."""
    conn = sqlite3.connect(str(path), timeout=10)
    try:
        conn.execute("VACUUM")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        blobs = blob_bytes(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return pages * page_size, blobs
    finally:
        conn.close()


def warm_up(saver: Saver) -> tuple[int, int]:
    """A one-superstep run of another graph on another thread (creates the schema), then the baseline sizes."""
    graph = saver.compile(linear_graph(saver.lib, 1), name="warmup")
    out = graph.invoke({"counter": 0}, graph_config("warmup"), durability=DURABILITY)
    check(out == {"counter": 1}, f"{saver.lib.name} chat warm-up returned {out!r}")
    RAN.clear()
    return measure(saver.path)


def chat_loop_sample(cfg: Config, lib: Lib, lgw: ModuleType | None, n: int) -> tuple[int, int, float]:
    """(a) (file bytes, blob bytes) grown by one invoke of n supersteps, each appending a message; seconds."""
    saver = Saver(cfg, lib, "graph-chat-a", lgw)
    try:
        before = warm_up(saver)
        graph = saver.compile(chat_loop_graph(lib, n))
        out, dt = timed_invoke(graph, {"messages": []}, graph_config("t1", n))
        check(out == {"messages": [message(i) for i in range(n)]}, f"{lib.name} chat (a): wrong state after {n}")
        saver.check_pragmas()
        after = measure(saver.path)
        return after[0] - before[0], after[1] - before[1], dt
    finally:
        saver.close()


def chat_turns_sample(
    cfg: Config, lib: Lib, lgw: ModuleType | None, points: tuple[int, ...]
) -> tuple[dict[int, tuple[int, int]], dict[int, float]]:
    """(b) max(points) invokes on one thread, one message each; at each point the (file, blob) bytes grown since
    the warm-up, and the seconds the invokes took so far (measuring excluded)."""
    saver = Saver(cfg, lib, "graph-chat-b", lgw)
    try:
        before = warm_up(saver)
        graph = saver.compile(chat_turn_graph(lib))
        config = graph_config("t1")
        grown: dict[int, tuple[int, int]] = {}
        clock: dict[int, float] = {}
        spent = 0.0
        gc.collect()
        for i in range(max(points)):
            t0 = time.perf_counter()
            out = graph.invoke({"messages": [message(i)]}, config, durability=DURABILITY)
            spent += time.perf_counter() - t0
            if i + 1 in points:
                check(
                    out == {"messages": [message(k) for k in range(i + 1)], "last": i + 1},
                    f"{lib.name} chat (b): wrong state after {i + 1} invokes",
                )
                size, blobs = measure(saver.path)
                grown[i + 1] = (size - before[0], blobs - before[1])
                clock[i + 1] = spent
        saver.check_pragmas()
        return grown, clock
    finally:
        saver.close()


def bench_graph_chat_bytes(cfg: Config) -> list[Row]:
    lg = langgraph_lib(cfg)
    points = CHAT_POINTS_QUICK if cfg.quick else CHAT_POINTS
    sec = section(cfg, "chat journal bytes per step, one message (~100 B) a step", lg)
    if lg is not None:
        sec = sec.replace("[lg]", "[gb]")
    libs: list[tuple[Lib, ModuleType | None]] = [(durable_lib(), None)]
    if lg is not None:
        libs.append((lg[0], lg[1]))
    rows: list[Row] = []
    timing: list[str] = []

    def rows_for(label: str, per_lib: list[dict[int, tuple[int, int]]]) -> None:
        for what, i in (("file after VACUUM", 0), ("stored blobs", 1)):
            for n in points:
                ours = per_lib[0][n][i] / n
                if len(per_lib) == 1:
                    rows.append(Row(sec, f"{label}, {what}", f"{n:,}", ours, "bytes/step", None, [ours]))
                else:
                    theirs = per_lib[1][n][i] / n
                    rows.append(Row(sec, f"{label}, {what}", f"{n:,}", theirs, "bytes/step", ours, [theirs], [ours]))
                    rows[-1].note = "[gb]"

    label_a = "(a) one invoke, node loops N supersteps"
    try:
        per_lib = []
        for lib, lgw in libs:
            grown: dict[int, tuple[int, int]] = {}
            secs = []
            for n in points:
                size, blobs, dt = chat_loop_sample(cfg, lib, lgw, n)
                grown[n] = (size, blobs)
                secs.append(f"{dt / n * 1e6:,.0f}")
            per_lib.append(grown)
            timing.append(f"{lib.name} (a) µs/step at N = {'/'.join(f'{n:,}' for n in points)}: {'/'.join(secs)}")
        rows_for(label_a, per_lib)
    except Exception as exc:
        rows.append(fail_row(cfg, Row(sec, label_a, f"{points[-1]:,}"), exc))

    label_b = "(b) N invokes on one thread, 1 message each"
    try:
        per_lib = []
        for lib, lgw in libs:
            grown, clock = chat_turns_sample(cfg, lib, lgw, points)
            per_lib.append(grown)
            prev, stretch = 0, []
            for n in points:
                stretch.append(f"{(clock[n] - clock.get(prev, 0.0)) / (n - prev) * 1e3:.2f}")
                prev = n
            timing.append(
                f"{lib.name} (b) ms/invoke over invokes {'/'.join(f'..{n:,}' for n in points)}: {'/'.join(stretch)}"
            )
        rows_for(label_b, per_lib)
    except Exception as exc:
        rows.append(fail_row(cfg, Row(sec, label_b, f"{points[-1]:,}"), exc))

    if timing:
        cfg.notes.append("graph-chat-bytes wall time (one sample each, not a table row): " + "; ".join(timing))
    return rows
