"""`draw_graph(builder).draw_mermaid()`: the Mermaid text LangGraph's ``get_graph().draw_mermaid()`` writes.

Each case builds the same graph twice, with durable's `StateGraph` and with LangGraph's, and the two texts
must be equal byte for byte (skipped without LangGraph); a seeded batch of random graphs checks the rules
no hand-written case thought of. The last tests pin exact texts, so they mean something without LangGraph.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import pytest

from durable._interrupts import Command
from durable.errors import ConfigurationError
from durable.graph._builder import END, START, StateGraph
from durable.graph._draw import Edge, Graph, Node, draw_graph


class State(TypedDict):
    x: int


def noop(state: State) -> dict[str, Any]:
    return {}


class FakeCompiled:
    """Stands in for durable's compiled graph as a subgraph node: ``durable.graph._compiled`` is not written
    yet, and `draw_graph` only reads ``.builder`` (and ``.name``) of it, by duck typing."""

    def __init__(self, builder: StateGraph[Any, Any, Any, Any], name: str = "LangGraph") -> None:
        self.builder, self.name = builder.validate(), name

    def invoke(self, state: Any, config: Any = None) -> Any:
        return {}


@dataclass(frozen=True)
class Api:
    """What differs between the two libraries when a case builds its graph."""

    StateGraph: Any
    Command: Any
    subgraph: Callable[[Any], Any]  # a node that runs this builder's graph


def durable_api() -> Api:
    return Api(StateGraph, Command, FakeCompiled)


def langgraph_api() -> Api:
    graph = pytest.importorskip("langgraph.graph")
    types = pytest.importorskip("langgraph.types")
    return Api(graph.StateGraph, types.Command, lambda builder: builder.compile())


def router(name: str, returns: Any = None) -> Callable[[Any], str]:
    """A router named ``name`` (a node's branches need distinct names) returning ``returns`` if annotated."""

    def route(state: Any) -> str:
        return END

    route.__name__ = route.__qualname__ = name
    route.__annotations__ = {} if returns is None else {"return": returns}
    return route


def commanding(api: Api, *targets: str) -> Callable[[Any], Any]:
    """A node annotated ``-> Command[Literal[*targets]]`` (with that library's `Command`)."""

    def node(state: Any) -> Any:
        return None

    node.__annotations__ = {"return": api.Command[Literal[targets]]}
    return node


def graph(api: Api, *nodes: str, **options: dict[str, Any]) -> Any:
    """A builder with ``nodes`` (each with ``options[name]`` as ``add_node`` keywords)."""
    builder = api.StateGraph(State)
    for name in nodes:
        builder.add_node(name, noop, **options.get(name, {}))
    return builder


# -- the cases: each builds one graph with either library ------------------------------------------------


def linear(api: Api) -> Any:
    return graph(api, "a", "b", "c").add_edge(START, "a").add_edge("a", "b").add_edge("b", "c").add_edge("c", END)


def sequence(api: Api) -> Any:
    def step_one(state: State) -> dict[str, Any]:
        return {}

    def step_two(state: State) -> dict[str, Any]:
        return {}

    builder = api.StateGraph(State).add_sequence([step_one, step_two, ("last", noop)])
    return builder.add_edge(START, "step_one").add_edge("last", END)


def entry_and_finish_points(api: Api) -> Any:
    builder = graph(api, "a", "b").add_edge("a", "b")
    return builder.set_entry_point("a").set_finish_point("b")


def dict_path_map(api: Api) -> Any:
    builder = graph(api, "a", "b", "c").add_edge(START, "a").add_edge("b", END).add_edge("c", END)
    return builder.add_conditional_edges("a", router("route"), {"go left": "b", "right": "c"})


def list_path_map(api: Api) -> Any:
    builder = graph(api, "a", "b", "c").add_edge(START, "a").add_edge("b", END).add_edge("c", END)
    return builder.add_conditional_edges("a", router("route"), ["b", "c"])


def literal_router(api: Api) -> Any:
    builder = graph(api, "a", "b", "c").add_edge(START, "a").add_edge("b", END).add_edge("c", END)
    return builder.add_conditional_edges("a", router("route", Literal["b", "c"]))


def router_without_map(api: Api) -> Any:
    """LangGraph cannot know where it goes: it draws no edge from it (``a`` looks like the end)."""
    builder = graph(api, "a", "b", "c").add_edge(START, "a").add_edge("b", END).add_edge("c", END)
    return builder.add_conditional_edges("a", router("route"))


def router_to_end(api: Api) -> Any:
    builder = graph(api, "a", "b").add_edge(START, "a").add_edge("b", END)
    builder.add_conditional_edges("a", router("route", Literal["b", "__end__"]))
    return builder


def boolean_map_to_end(api: Api) -> Any:
    builder = graph(api, "agent", "tools").add_edge(START, "agent").add_edge("tools", "agent")
    return builder.add_conditional_edges("agent", router("should_continue"), {True: "tools", False: END})


def conditional_entry(api: Api) -> Any:
    builder = graph(api, "a", "b").add_edge("a", END).add_edge("b", END)
    return builder.set_conditional_entry_point(router("pick"), {"first": "a", "second": "b"})


def two_routers(api: Api) -> Any:
    builder = graph(api, "a", "b", "c").add_edge(START, "a").add_edge("b", "c").add_edge("a", "c")
    builder.add_conditional_edges("a", router("one"), {"x": "b", "y": END})
    return builder.add_conditional_edges("b", router("two", Literal["a", "__end__"]))


def join(api: Api) -> Any:
    builder = graph(api, "a", "b", "c").add_edge(START, "a").add_edge(START, "b")
    return builder.add_edge(["a", "b"], "c").add_edge("c", END)


def join_after_uneven_branches(api: Api) -> Any:
    builder = graph(api, "a", "a2", "b", "c").add_edge(START, "a").add_edge(START, "b").add_edge("a", "a2")
    return builder.add_edge(["a2", "b"], "c").add_edge("c", END)


def command_literal(api: Api) -> Any:
    builder = api.StateGraph(State)
    builder.add_node("a", commanding(api, "x", "y")).add_node("x", noop).add_node("y", noop)
    return builder.add_edge(START, "a").add_edge("x", END).add_edge("y", END)


def command_to_end(api: Api) -> Any:
    builder = api.StateGraph(State).add_node("a", commanding(api, "b", END)).add_node("b", noop)
    return builder.add_edge(START, "a").add_edge("b", END)


def destinations(api: Api) -> Any:
    builder = graph(api, "a", "b", "c", "d", a={"destinations": ("b", "c")}, b={"destinations": {"d": "finish"}})
    return builder.add_edge(START, "a").add_edge("c", END).add_edge("d", END)


def defer(api: Api) -> Any:
    builder = graph(api, "a", "a2", "b", "c", c={"defer": True}).add_edge(START, "a").add_edge(START, "b")
    return builder.add_edge("a", "a2").add_edge("a2", "c").add_edge("b", "c").add_edge("c", END)


def loop(api: Api) -> Any:
    builder = graph(api, "think", "act").add_edge(START, "think").add_edge("act", "think")
    return builder.add_conditional_edges("think", router("route", Literal["act", "__end__"]))


def fan_out(api: Api) -> Any:
    builder = graph(api, "a", "b", "c", "d").add_edge(START, "a").add_edge("a", "b").add_edge("a", "c")
    return builder.add_edge("b", "d").add_edge("c", "d").add_edge("d", END)


def names_to_escape(api: Api) -> Any:
    builder = graph(api, "my node", "_private_", "ñandú", "*bold*", "a.b-c")
    builder.add_edge(START, "my node").add_edge("my node", "_private_").add_edge("_private_", "ñandú")
    builder.add_conditional_edges("ñandú", router("route"), {"to *bold*": "*bold*", "to a.b-c": "a.b-c"})
    return builder.add_edge("*bold*", END).add_edge("a.b-c", END)


def metadata(api: Api) -> Any:
    tags = {"a": {"metadata": {"team": "search", "retries": 3, "tags": ["x", "y[1]"], "opaque": object()}}}
    return graph(api, "a", "b", **tags).add_edge(START, "a").add_edge("a", "b").add_edge("b", END)


def long_labels(api: Api) -> Any:
    builder = graph(api, "a", "b").add_edge(START, "a").add_edge("b", END)
    words = "when the answer still needs one more look at the sources we found"
    return builder.add_conditional_edges("a", router("route"), {words: "b", "done": END})


def with_subgraph(api: Api) -> Any:
    inner = graph(api, "inner_a", "inner_b").add_edge(START, "inner_a").add_edge("inner_a", "inner_b")
    inner.add_edge("inner_b", END)
    builder = api.StateGraph(State).add_node("prep", noop).add_node("sub", api.subgraph(inner))
    return builder.add_node("post", noop).add_edge(START, "prep").add_edge("prep", "sub").add_edge("sub", "post")


def with_nested_subgraphs(api: Api) -> Any:
    deepest = graph(api, "d1", "d2").add_edge(START, "d1").add_edge("d1", "d2").add_edge("d2", END)
    middle = graph(api, "m1").add_node("deep", api.subgraph(deepest)).add_edge(START, "m1")
    middle.add_conditional_edges("m1", router("route"), {"deeper": "deep", "out": END}).add_edge("deep", END)
    builder = api.StateGraph(State).add_node("mid", api.subgraph(middle)).add_node("after", noop)
    return builder.add_edge(START, "mid").add_edge("mid", "after").add_edge("after", END)


def subgraph_called_by_a_function(api: Api) -> Any:
    inner = graph(api, "x", "y").add_edge(START, "x").add_edge("x", "y").add_edge("y", END)
    compiled = api.subgraph(inner)

    def call_it(state: State) -> Any:
        return compiled.invoke(state)

    builder = api.StateGraph(State).add_node("call_it", call_it)
    return builder.add_edge(START, "call_it").add_edge("call_it", END)


CASES = [
    linear,
    sequence,
    entry_and_finish_points,
    dict_path_map,
    list_path_map,
    literal_router,
    router_without_map,
    router_to_end,
    boolean_map_to_end,
    conditional_entry,
    two_routers,
    join,
    join_after_uneven_branches,
    command_literal,
    command_to_end,
    destinations,
    defer,
    loop,
    fan_out,
    names_to_escape,
    metadata,
    long_labels,
    with_subgraph,
    with_nested_subgraphs,
    subgraph_called_by_a_function,
]
SUBGRAPH_CASES = [with_subgraph, with_nested_subgraphs, subgraph_called_by_a_function]


def both(case: Callable[[Api], Any], xray: bool | int = False) -> tuple[Any, Graph]:
    """LangGraph's drawable graph and durable's, for the same case."""
    theirs = case(langgraph_api()).compile().get_graph(xray=xray)
    return theirs, draw_graph(case(durable_api()).validate(), xray=xray)


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_mermaid_is_langgraphs(case: Callable[[Api], Any]) -> None:
    theirs, ours = both(case)
    assert ours.draw_mermaid() == theirs.draw_mermaid()


@pytest.mark.parametrize("xray", [True, 1, 2])
@pytest.mark.parametrize("case", SUBGRAPH_CASES, ids=[c.__name__ for c in SUBGRAPH_CASES])
def test_xray_expands_subgraphs_as_langgraph_does(case: Callable[[Api], Any], xray: bool | int) -> None:
    theirs, ours = both(case, xray)
    assert ours.draw_mermaid() == theirs.draw_mermaid()
    assert [(e.source, e.target, e.data, e.conditional) for e in ours.edges] == [
        (e.source, e.target, e.data, e.conditional) for e in theirs.edges
    ]


def test_interrupts_are_marked_as_langgraph_marks_them() -> None:
    theirs = linear(langgraph_api()).compile(interrupt_before=["a", "b"], interrupt_after=["b"]).get_graph()
    ours = draw_graph(linear(durable_api()), interrupt_before=["a", "b"], interrupt_after=["b"])
    assert ours.draw_mermaid() == theirs.draw_mermaid()


@pytest.mark.parametrize(
    "options",
    [
        {"with_styles": False},
        {"curve_style": "basis"},
        {"wrap_label_n_words": 2},
        {"node_colors": {"default": "fill:#fff", "first": "fill:#000", "last": "fill:#f00"}},
        {"frontmatter_config": {"config": {"theme": "neutral", "themeVariables": {"primaryColor": "#e2e2e2"}}}},
        {"frontmatter_config": {"title": "My graph", "config": {"flowchart": {"htmlLabels": False}}}},
    ],
    ids=["no-styles", "curve", "wrap", "colors", "theme", "title"],
)
def test_drawing_options_are_langchains(options: dict[str, Any]) -> None:
    graph_module = pytest.importorskip("langchain_core.runnables.graph")
    theirs, ours = both(with_nested_subgraphs, xray=True)
    their_options = dict(options)
    if "curve_style" in options:
        their_options["curve_style"] = graph_module.CurveStyle(options["curve_style"])
    if "node_colors" in options:
        their_options["node_colors"] = graph_module.NodeStyles(**options["node_colors"])
    assert ours.draw_mermaid(**options) == theirs.draw_mermaid(**their_options)
    assert ours.draw_mermaid(**their_options) == theirs.draw_mermaid(**their_options)  # their enums work too
    if "frontmatter_config" not in options:
        long = both(long_labels)
        assert long[1].draw_mermaid(**options) == long[0].draw_mermaid(**their_options)


def test_duplicate_subgraph_names_are_refused_like_langgraph() -> None:
    def case(api: Api) -> Any:
        inner = graph(api, "x", "y").add_edge(START, "x").add_edge("x", "y").add_edge("y", END)
        middle = graph(api, "m").add_node("sub", api.subgraph(inner)).add_edge(START, "m").add_edge("m", "sub")
        builder = api.StateGraph(State).add_node("sub", api.subgraph(middle)).add_node("b", noop)
        return builder.add_edge(START, "sub").add_edge("sub", "b")

    with pytest.raises(ValueError, match="duplicate subgraph 'sub'"):
        case(langgraph_api()).compile().get_graph(xray=True).draw_mermaid()
    with pytest.raises(ConfigurationError, match="duplicate subgraph 'sub'"):
        draw_graph(case(durable_api()), xray=True).draw_mermaid()


# -- random graphs --------------------------------------------------------------------------------------


def random_case(seed: int) -> Callable[[Api], Any]:
    """A random graph: edges, joins, routers of every kind, Commands, destinations and defer nodes."""
    rng = random.Random(seed)
    nodes = [f"n{i}" for i in range(rng.randint(1, 6))]
    targets = [*nodes, END]
    edges = {(START, rng.choice(nodes))} | {
        (rng.choice([START, *nodes]), rng.choice(targets)) for _ in range(rng.randint(0, 2 * len(nodes)))
    }
    joins = [
        (rng.sample(nodes, rng.randint(2, min(3, len(nodes)))), rng.choice(targets))
        for _ in range(rng.randint(1, 2) if len(nodes) > 1 and rng.random() < 0.4 else 0)
    ]
    branches = []
    for i in range(rng.randint(0, 3)):
        ends = rng.sample(targets, rng.randint(1, min(3, len(targets))))
        kind = rng.choice(["dict", "list", "literal", "none"])
        labels = rng.sample(["yes", "no", "maybe", "other way", True, 3], len(ends))
        path_map = dict(zip(labels, ends, strict=True)) if kind == "dict" else ends if kind == "list" else None
        branches.append(
            (rng.choice([START, *nodes]), f"route_{i}", Literal[tuple(ends)] if kind == "literal" else None, path_map)
        )
    options: dict[str, dict[str, Any]] = {n: {} for n in nodes}
    commands: dict[str, list[str]] = {}
    for name in nodes:
        if rng.random() < 0.15:
            options[name]["defer"] = True
        roll = rng.random()
        if roll < 0.1:
            commands[name] = rng.sample(targets, rng.randint(1, 2))
        elif roll < 0.2:
            to = rng.sample(targets, rng.randint(1, 2))
            options[name]["destinations"] = tuple(to) if rng.random() < 0.5 else {t: f"to {t}" for t in to}

    def case(api: Api) -> Any:
        builder = api.StateGraph(State)
        for name in nodes:
            builder.add_node(name, commanding(api, *commands[name]) if name in commands else noop, **options[name])
        for source, target in sorted(edges):
            builder.add_edge(source, target)
        for starts, target in joins:
            builder.add_edge(starts, target)
        for source, name, returns, path_map in branches:
            builder.add_conditional_edges(source, router(name, returns), path_map)
        return builder

    return case


@pytest.mark.parametrize("seed", range(0, 150, 15))
@pytest.mark.slow
def test_random_graphs_are_drawn_as_langgraph_draws_them(seed: int) -> None:
    langgraph_api()
    for case in map(random_case, range(seed, seed + 15)):
        try:
            theirs = case(langgraph_api()).compile().get_graph().draw_mermaid()
        except TypeError:  # LangGraph sorts edge labels with None among strings: some graphs it cannot draw
            continue
        assert draw_graph(case(durable_api()).validate()).draw_mermaid() == theirs


# -- without LangGraph: exact texts ---------------------------------------------------------------------

HEADER = "---\nconfig:\n  flowchart:\n    curve: linear\n---\ngraph TD;\n"
STYLES = (
    "\tclassDef default fill:#f2f0ff,line-height:1.2\n\tclassDef first fill-opacity:0\n\tclassDef last fill:#bfb6fc\n"
)


def test_a_linear_graph() -> None:
    assert (
        draw_graph(linear(durable_api())).draw_mermaid()
        == HEADER
        + (
            "\t__start__([<p>__start__</p>]):::first\n"
            "\ta(a)\n"
            "\tb(b)\n"
            "\tc(c)\n"
            "\t__end__([<p>__end__</p>]):::last\n"
            "\t__start__ --> a;\n"
            "\ta --> b;\n"
            "\tb --> c;\n"
            "\tc --> __end__;\n"
        )
        + STYLES
    )


def test_routes_are_dotted_and_labelled_with_their_path_map_keys() -> None:
    drawn = draw_graph(boolean_map_to_end(durable_api()))
    assert (
        drawn.draw_mermaid()
        == HEADER
        + (
            "\t__start__([<p>__start__</p>]):::first\n"
            "\tagent(agent)\n"
            "\ttools(tools)\n"
            "\t__end__([<p>__end__</p>]):::last\n"
            "\t__start__ --> agent;\n"
            "\tagent -. &nbsp;False&nbsp; .-> __end__;\n"
            "\tagent -. &nbsp;True&nbsp; .-> tools;\n"
            "\ttools --> agent;\n"
        )
        + STYLES
    )
    assert drawn.to_json()["edges"][1] == {"source": "agent", "target": "__end__", "data": "False", "conditional": True}


def test_a_list_or_literal_map_draws_no_labels_and_a_router_without_one_draws_nothing() -> None:
    expected = "\ta -.-> b;\n\ta -.-> c;\n\tb --> __end__;\n\tc --> __end__;\n"
    assert expected in draw_graph(list_path_map(durable_api())).draw_mermaid()
    assert expected in draw_graph(literal_router(durable_api())).draw_mermaid()
    unmapped = draw_graph(router_without_map(durable_api()))
    assert [(e.source, e.target) for e in unmapped.edges] == [(START, "a"), ("a", END)]


def test_joins_commands_and_defer_nodes() -> None:
    assert "\ta --> c;\n\tb --> c;\n" in draw_graph(join(durable_api())).draw_mermaid()
    commanded = draw_graph(destinations(durable_api()))
    assert Edge("b", "d", "finish", True) in commanded.edges
    assert Edge("a", "c", None, True) in commanded.edges
    deferred = draw_graph(defer(durable_api()))
    assert deferred.nodes["c"] == Node("c", "c", {"defer": True})
    assert "\tc(c<hr/><small><em>defer = True</em></small>)\n" in deferred.draw_mermaid()


def test_a_subgraph_with_xray() -> None:
    builder = with_subgraph(durable_api())
    assert "sub:inner_a" not in draw_graph(builder).nodes
    assert (
        draw_graph(builder, xray=True).draw_mermaid()
        == HEADER
        + (
            "\t__start__([<p>__start__</p>]):::first\n"
            "\tprep(prep)\n"
            "\tpost(post)\n"
            "\t__end__([<p>__end__</p>]):::last\n"
            "\t__start__ --> prep;\n"
            "\tprep --> sub\\3ainner_a;\n"
            "\tsub\\3ainner_b --> post;\n"
            "\tpost --> __end__;\n"
            "\tsubgraph sub\n"
            "\tsub\\3ainner_a(inner_a)\n"
            "\tsub\\3ainner_b(inner_b)\n"
            "\tsub\\3ainner_a --> sub\\3ainner_b;\n"
            "\tend\n"
        )
        + STYLES
    )


def test_durables_compiled_subgraphs_are_expanded_without_opening_their_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DURABLE_URL", raising=False)
    real = Api(StateGraph, Command, lambda builder: builder.compile())  # journals to ./durable.db, once used
    for case in SUBGRAPH_CASES:
        expected = draw_graph(case(durable_api()), xray=True).draw_mermaid()
        assert draw_graph(case(real), xray=True).draw_mermaid() == expected
    assert list(tmp_path.iterdir()) == []


def test_names_are_escaped_into_mermaid_ids() -> None:
    text = draw_graph(names_to_escape(durable_api())).draw_mermaid()
    assert "\tmy\\20node(my node)\n" in text
    assert "\t_private_(<p>_private_</p>)\n" in text
    assert "\t\\f1and\\fa(ñandú)\n" in text
    assert "\t\\f1and\\fa -. &nbsp;to *bold*&nbsp; .-> \\2abold\\2a;\n" in text


def test_options_without_langchain(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = draw_graph(long_labels(durable_api()))
    assert drawn.draw_mermaid(with_styles=False).startswith("graph TD;\n\t__start__ --> a;\n")
    assert "more look&nbsp<br>&nbspat the" in drawn.draw_mermaid(wrap_label_n_words=8)
    assert "\tclassDef last fill:red\n" in drawn.draw_mermaid(node_colors={"last": "fill:red"})
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML absent: durable writes the YAML itself
    assert drawn.draw_mermaid().startswith(HEADER)
    themed = drawn.draw_mermaid(curve_style="basis", frontmatter_config={"config": {"theme": "neutral", "x": "#1"}})
    assert themed.startswith('---\nconfig:\n  flowchart:\n    curve: basis\n  theme: neutral\n  x: "#1"\n---\n')


def test_images_are_not_drawn() -> None:
    with pytest.raises(ConfigurationError, match=r"paste the text of graph\.draw_mermaid"):
        draw_graph(linear(durable_api())).draw_mermaid_png()
