"""``get_graph()`` and ``draw_mermaid()``: the picture of a graph that LangGraph draws, text for text.

LangGraph does not read its edges off the builder: it runs the compiled graph "dry" (no node is called,
routers are not called either) and records which node's writes triggered which node, step by step. So a
plain edge to END is drawn only because its node ends up writing nowhere, a router without a path map
or ``Literal`` annotation draws nothing (its node then looks like it ends the graph), a node reached
again in a loop keeps the conditional edges of its first run, and so on. To draw the same picture,
`draw_graph` replays that dry run on a model of LangGraph's trigger channels (one per node, one per
join) rather than guessing from the edges; the Mermaid text is then written by the same rules as
``langchain_core``'s ``draw_mermaid``, so a diagram pasted from either is the same diagram.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from ._builder import END, START, StateGraph

__all__ = ["Edge", "Graph", "Node", "draw_graph"]

_STEP_LIMIT = 250  # LangGraph's dry run stops there too (a loop of plain edges never ends by itself)
_STYLES = {"default": "fill:#f2f0ff,line-height:1.2", "first": "fill-opacity:0", "last": "fill:#bfb6fc"}
_MARKDOWN = ("*", "_", "`")  # a name starting and ending with one is wrapped in <p> (else Mermaid formats it)
_LABEL_ESCAPES = {c: f"#{ord(c)};" for c in '[](){}"<>|'}
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]")
_YAML_PLAIN = re.compile(r"[A-Za-z][\w.-]*")  # a word PyYAML writes as is (others are quoted)
_YAML_WORDS = re.compile(r"(?i:yes|no|true|false|on|off|null)")  # it quotes these: they would read as bool/null


@dataclass(frozen=True)
class Node:
    """A box in the picture: ``id`` is unique (``sub:node`` inside an expanded subgraph), ``name`` is shown."""

    id: str
    name: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Edge:
    """An arrow; ``conditional`` ones are dotted, ``data`` is the label (a path map's key)."""

    source: str
    target: str
    data: str | None = None
    conditional: bool = False


@dataclass
class Graph:
    """The drawable graph (LangChain's ``Graph``, without its dependency): nodes by id, and edges."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def first_node(self) -> Node | None:
        """The only node no edge leads to (drawn as a stadium, class ``first``), if there is exactly one."""
        return _only(self, "target", ())

    def last_node(self) -> Node | None:
        """The only node no edge leaves (drawn as a stadium, class ``last``), if there is exactly one."""
        return _only(self, "source", ())

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """Plain data, in the shape of LangChain's ``Graph.to_json`` edges (nodes carry their name)."""
        return {
            "nodes": [{k: v for k, v in vars(n).items() if v is not None} for n in self.nodes.values()],
            "edges": [{k: v for k, v in vars(e).items() if v is not None and v is not False} for e in self.edges],
        }

    def draw_mermaid(
        self,
        *,
        with_styles: bool = True,
        curve_style: Any = "linear",
        node_colors: Mapping[str, str] | Any = None,
        wrap_label_n_words: int = 9,
        frontmatter_config: dict[str, Any] | None = None,
    ) -> str:
        """The Mermaid flowchart, the same text as LangGraph's ``get_graph().draw_mermaid()``.

        ``curve_style`` is a Mermaid curve name (or LangChain's ``CurveStyle``); ``node_colors`` maps
        ``default``/``first``/``last`` to CSS (or is LangChain's ``NodeStyles``); ``frontmatter_config``
        is merged into the YAML header (``{"config": {"theme": "neutral"}}``).
        """
        return _Mermaid(self, with_styles, wrap_label_n_words).render(
            str(getattr(curve_style, "value", curve_style)), _styles(node_colors), frontmatter_config or {}
        )

    def draw_mermaid_png(self, **kwargs: Any) -> bytes:
        """Not drawn here: rendering needs a browser or a web service, which durable does not call."""
        raise ConfigurationError(
            "durable does not render images: paste the text of graph.draw_mermaid() into a Mermaid renderer "
            "(https://mermaid.live, or a ```mermaid block in GitHub or a notebook)"
        )


def _only(graph: Graph, end: str, exclude: Collection[str]) -> Node | None:
    """The single node that is no edge's ``end`` ("target": a first node, "source": a last node), ignoring
    edges from (or to) the ``exclude``d nodes; None when there are none or several (LangChain's rule)."""
    other = "source" if end == "target" else "target"
    touched = {getattr(e, end) for e in graph.edges if getattr(e, other) not in exclude}
    found = [n for n in graph.nodes.values() if n.id not in exclude and n.id not in touched]
    return found[0] if len(found) == 1 else None


def _trim(graph: Graph, end: str) -> None:
    """Drop a subgraph's START (or END) when it has one edge and another node can take its place."""
    node, other = _only(graph, end, ()), "source" if end == "target" else "target"
    if node and _only(graph, end, (node.id,)) and len({e for e in graph.edges if getattr(e, other) == node.id}) == 1:
        del graph.nodes[node.id]
        graph.edges = [e for e in graph.edges if node.id not in (e.source, e.target)]


# -- the dry run ----------------------------------------------------------------------------------------


class _Channel:
    """One of LangGraph's trigger channels, reduced to whether it wakes its node: a node's own channel (an
    ephemeral value: written one step, gone the next), a join's barrier (full once every ``names`` wrote)
    and, for a defer node, either one held back until nothing else is left to run (``after_finish``)."""

    def __init__(self, after_finish: bool, names: frozenset[str] | None = None) -> None:
        self.after_finish, self.names = after_finish, names
        self.got: set[str] = set()
        self.finished = False

    def ready(self) -> bool:
        return self.got == self.names if self.names is not None else bool(self.got)

    def available(self) -> bool:
        return self.ready() and (self.finished or not self.after_finish)

    def update(self, values: list[str]) -> bool:
        """Take a step's writes; with none, an ephemeral value goes (True: the channel changed)."""
        if self.names is not None:
            new = set(values) - self.got
            self.got |= new
            return bool(new)
        if values or (self.got and not self.after_finish):
            self.got, self.finished = {"x"} if values else set(), False
            return True
        return False

    def consume(self) -> None:
        if (self.after_finish or self.names is not None) and self.available():
            self.got, self.finished = set(), False

    def finish(self) -> bool:
        """Open a deferred channel when the run would otherwise end (True: it opened)."""
        if not self.after_finish or self.finished or not self.ready():
            return False
        self.finished = True
        return True


_Raw = tuple[str, str, bool, str | None]  # source, target, conditional, label
_Trigger = tuple[str, bool, str | None]  # channel (or source), conditional, label


def _dry_run(builder: StateGraph[Any, Any, Any, Any]) -> tuple[set[_Raw], dict[str, set[_Trigger]]]:
    """The edges LangGraph's dry run finds, and the last step's writers (they may end the graph)."""
    channels: dict[str, _Channel] = {START: _Channel(False)}
    triggers: dict[str, list[str]] = {START: [START]}
    writes: dict[str, list[tuple[str, str]]] = {START: []}  # plain edges: (channel, value); a join's value: source
    static: dict[str, list[tuple[str, str | None]]] = {START: []}  # declared routes: (target, label)
    for name, spec in builder.nodes.items():
        channels[f"branch:to:{name}"] = _Channel(spec.defer)
        triggers[name], writes[name] = [f"branch:to:{name}"], []
        static[name] = list(spec.ends.items() if isinstance(spec.ends, dict) else ((e, None) for e in spec.ends))
    for source, target in builder.edges:
        if target != END:
            writes[source].append((f"branch:to:{target}", ""))
    for starts, target in builder.waiting_edges:
        if target != END:
            join = f"join:{'+'.join(starts)}:{target}"
            channels[join] = _Channel(builder.nodes[target].defer, frozenset(starts))
            triggers[target].append(join)
            writes.update({s: [*writes[s], (join, s)] for s in starts})
    for source, branches in builder.branches.items():
        for branch in branches.values():
            static[source] += [(t, str(k)) for k, t in (branch.ends or {}).items()]
    to_nodes = {chan: [n for n, chans in triggers.items() if chan in chans] for chan in channels}

    def step(tasks: list[str], task_writes: dict[str, list[tuple[str, str]]]) -> list[str]:
        """Apply a step's writes as LangGraph's ``apply_writes`` does; the nodes they wake, in name order."""
        for chan in {c for name in tasks for c in triggers[name]}:
            channels[chan].consume()
        pending: dict[str, list[str]] = defaultdict(list)
        for chan, value in (w for name in tasks for w in task_writes[name]):
            pending[chan].append(value)
        updated = {c for c, values in pending.items() if channels[c].update(values) and channels[c].available()}
        for chan, channel in channels.items():
            if chan not in updated and channel.available():
                channel.update([])
        if not updated:  # nothing left to run: the deferred nodes' channels open
            updated = {chan for chan, channel in channels.items() if channel.finish()}
        woken = {n for c in updated for n in to_nodes[c]}
        return sorted(n for n in woken if any(channels[c].available() for c in triggers[n]))

    edges: set[_Raw] = set()
    sources: dict[str, set[_Trigger]] = {}  # what each node wrote when it last ran (what may have woken whom)
    declared: dict[str, set[_Trigger]] = defaultdict(set)
    routed: set[str] = set()  # a node's declared routes are written on its first run only, as in LangGraph
    step_sources: dict[str, set[_Trigger]] = {}
    tasks = [START]
    channels[START].update(["input"])
    for _ in range(_STEP_LIMIT + 1):
        if not tasks:
            break
        task_writes, step_sources = {}, {}
        for name in tasks:
            routes = [] if name in routed else static[name]
            routed.add(name)
            edges.update((name, END, True, label) for target, label in routes if target == END)
            routed_to = {f"branch:to:{t}" for t, _ in routes if t != END}
            declared[name] |= {(f"branch:to:{t}", True, label) for t, label in routes if t != END}
            task_writes[name] = writes[name] + [(c, "") for c in routed_to]
            # a plain edge to where a route also goes is drawn as the route: the write is the same
            step_sources[name] = declared[name] | {(c, False, None) for c, v in writes[name] if v or c not in routed_to}
        sources.update(step_sources)
        trigger_sources: dict[str, set[_Trigger]] = defaultdict(set)
        for source, found in sources.items():
            for chan, conditional, label in found:
                trigger_sources[chan].add((source, conditional, label))
        tasks = step(tasks, task_writes)
        for name in tasks:
            direct = False
            for chan in triggers[name]:
                for source, conditional, label in trigger_sources[chan]:
                    edges.add((source, name, conditional, label))
                    if (chan, conditional, label) in step_sources.get(source, ()):
                        direct = True
                    else:
                        sources[source].discard((chan, conditional, label))
            if not direct:  # woken by something older: LangGraph draws it from all of this step's nodes
                edges.update((source, name, True, None) for source in step_sources)
    return edges, step_sources


# -- the graph ------------------------------------------------------------------------------------------


def draw_graph(
    builder: StateGraph[Any, Any, Any, Any],
    *,
    xray: bool | int = False,
    interrupt_before: Collection[str] = (),
    interrupt_after: Collection[str] = (),
) -> Graph:
    """The graph as LangGraph's ``compiled.get_graph(xray=...)`` shows it.

    ``xray`` expands subgraph nodes into their own nodes (ids ``node:inner``): ``True`` at every depth,
    a number for that many levels. ``interrupt_before``/``interrupt_after`` mark the nodes a compiled
    graph pauses at (in their metadata, as LangGraph does).
    """
    raw, last_step = _dry_run(builder)
    graph = Graph()
    graph.nodes[START] = Node(START, START)
    for name, spec in builder.nodes.items():
        metadata = dict(spec.metadata or {})
        if spec.defer:
            metadata["defer"] = True
        pauses = [w for w, names in (("before", interrupt_before), ("after", interrupt_after)) if name in names]
        if pauses:
            metadata["__interrupt"] = ",".join(pauses)
        tools = getattr(spec.action, "tools_by_name", None)
        if isinstance(tools, Mapping) and tools:
            metadata["__tools"] = list(tools)
        graph.nodes[name] = Node(name, name, metadata or None)

    def add(source: str, target: str, label: str | None = None, conditional: bool = False) -> None:
        if any(e.source == source and e.target == target for e in graph.edges):
            return  # the first one wins
        graph.nodes.setdefault(target, Node(target, target))
        graph.edges.append(Edge(source, target, label, conditional))

    # in LangGraph's order (it sorts the tuples, and fails on a None label next to a text one: any order does)
    for source, target, conditional, label in sorted(raw, key=lambda e: (*e[:3], e[3] is not None, e[3] or "")):
        add(source, target, label if label != target else None, conditional)
    termini = {target for _, target, _, _ in raw if target != END} - {source for source, *_ in raw}
    for source in sorted(termini):
        add(source, END)
    if not termini and len(last_step) == 1 and all(target != END for _, target, _, _ in raw):
        add(next(iter(last_step)), END, conditional=True)
    if xray:
        deeper = xray if isinstance(xray, bool) or xray <= 0 else xray - 1
        for name, spec in builder.nodes.items():
            sub = _subgraph(spec.action)
            if sub is not None:
                _expand(graph, name, sub, deeper)
    return graph


def _subgraph(action: Any) -> Any:
    """A compiled graph run by this node: the node itself, or one its function refers to (LangGraph
    finds those too). A graph compiled with ``checkpointer=False`` is not a subgraph to LangGraph."""
    candidates = [action]
    if inspect.isfunction(action) or inspect.ismethod(action):
        try:
            found = inspect.getclosurevars(action)
        except (TypeError, ValueError):
            found = None
        if found is not None:
            values = [*found.nonlocals.values(), *found.globals.values()]
            candidates += [getattr(v, "__self__", v) if inspect.ismethod(v) else v for v in values]
    for candidate in candidates:  # read statically: no property runs (a compiled graph resolves its store)
        own_journal = inspect.getattr_static(candidate, "checkpointer", None) is not False
        if isinstance(inspect.getattr_static(candidate, "builder", None), StateGraph) and own_journal:
            return candidate
    return None


def _expand(graph: Graph, name: str, compiled: Any, xray: bool | int) -> None:
    """Put ``compiled``'s own graph where its node was, ids prefixed ``name:``, edges rewired to it."""
    before, after = (getattr(compiled, f"interrupt_{w}", None) for w in ("before", "after"))
    pauses = [p if isinstance(p, list | tuple) else () for p in (before, after)]  # a subgraph marks its own
    sub = draw_graph(compiled.builder, xray=xray, interrupt_before=pauses[0], interrupt_after=pauses[1])
    if len(sub.nodes) <= 1 or name not in graph.nodes or not sub.first_node() or not sub.last_node():
        return
    _trim(sub, "target")
    _trim(sub, "source")
    first, last = sub.first_node(), sub.last_node()
    del graph.nodes[name]
    for node in sub.nodes.values():
        graph.nodes[f"{name}:{node.id}"] = Node(f"{name}:{node.id}", node.name, node.metadata)
    graph.edges += [Edge(f"{name}:{e.source}", f"{name}:{e.target}", e.data, e.conditional) for e in sub.edges]
    for i, e in enumerate(graph.edges):
        if name in (e.source, e.target):
            source = f"{name}:{last.id}" if e.source == name and last else e.source
            target = f"{name}:{first.id}" if e.target == name and first else e.target
            graph.edges[i] = Edge(source, target, e.data, e.conditional)


# -- Mermaid --------------------------------------------------------------------------------------------


def _styles(colors: Mapping[str, str] | Any) -> dict[str, str]:
    """``classDef`` lines' styles: a mapping over the defaults, or LangChain's ``NodeStyles`` (attributes)."""
    if isinstance(colors, Mapping):
        return {**_STYLES, **colors}
    return {k: str(getattr(colors, k, v)) for k, v in _STYLES.items()}


def _safe_id(text: str) -> str:
    """A Mermaid id: other characters than ``[A-Za-z0-9_-]`` as backslash and hex code (as LangChain)."""
    return "".join(c if _SAFE_ID.fullmatch(c) else f"\\{ord(c):x}" for c in text)


class _Mermaid:
    """One rendering: top-level nodes, then edges grouped by the subgraph they lie in, then the styles."""

    def __init__(self, graph: Graph, with_styles: bool, wrap: int) -> None:
        self.graph, self.with_styles, self.wrap = graph, with_styles, wrap
        first, last = graph.first_node(), graph.last_node()
        ends = [(first, "([{}]):::first"), (last, "([{}]):::last")]
        self.shapes = {node.id: shape for node, shape in ends if node}  # the last wins when both are one node
        self.members: dict[str, list[Node]] = defaultdict(list)  # subgraph prefix -> its nodes
        for node in graph.nodes.values():
            self.members[node.id.rpartition(":")[0]].append(node)
        self.groups: dict[str, list[Edge]] = defaultdict(list)  # LangChain's grouping: equal id parts
        for e in graph.edges:
            parts = zip(e.source.split(":"), e.target.split(":"), strict=False)
            self.groups[":".join(a for a, b in parts if a == b)].append(e)
        self.opened: set[str] = set()
        self.out: list[str] = []

    def render(self, curve: str, styles: dict[str, str], frontmatter: dict[str, Any]) -> str:
        if self.with_styles:
            config = dict(frontmatter.get("config", {}))
            config["flowchart"] = {**config.get("flowchart", {}), "curve": curve}
            self.out.append(f"---\n{_yaml({**frontmatter, 'config': config})}---\n")
        self.out.append("graph TD;\n")
        if self.with_styles:
            self.out += [self.node(n) for n in self.members.get("", ())]
        self.block("", self.groups.get("", []))
        for prefix, edges in list(self.groups.items()):
            if prefix and ":" not in prefix:
                self.block(prefix, edges)
                self.opened.add(prefix)
        for prefix, nodes in self.members.items():
            if self.with_styles and prefix and ":" not in prefix and prefix not in self.opened:
                self.out += [f"\tsubgraph {prefix}\n", *map(self.node, nodes), "\tend\n"]
                self.opened.add(prefix)
        if self.with_styles:
            self.out += [f"\tclassDef {k} {v}\n" for k, v in styles.items()]
        return "".join(self.out)

    def node(self, node: Node) -> str:
        label = node.name.rpartition(":")[2]
        if label.startswith(_MARKDOWN) and label.endswith(_MARKDOWN):
            label = f"<p>{label}</p>"
        lines = [_metadata_line(k, v) for k, v in (node.metadata or {}).items()]
        if any(lines):
            label += "<hr/><small><em>" + "\n".join(line for line in lines if line) + "</em></small>"
        return "\t" + _safe_id(node.id) + self.shapes.get(node.id, "({})").format(label) + "\n"

    def block(self, prefix: str, edges: list[Edge]) -> None:
        boxed = bool(prefix) and not (len(edges) == 1 and edges[0].source == edges[0].target)
        if boxed:
            name = prefix.rpartition(":")[2]
            if name in self.opened:  # LangChain refuses it too: the two blocks would merge into one
                raise ConfigurationError(f"Found duplicate subgraph '{name}': give each subgraph node its own name")
            self.opened.add(name)
            self.out.append(f"\tsubgraph {name}\n")
            if self.with_styles:
                self.out += [self.node(n) for n in self.members.get(prefix, ())]
        for e in edges:
            self.out.append(f"\t{_safe_id(e.source)}{self.arrow(e)}{_safe_id(e.target)};\n")
        for nested, nested_edges in list(self.groups.items()):
            rest = nested[len(prefix) + 1 :]
            if nested.startswith(prefix + ":") and rest and ":" not in rest:
                self.block(nested, nested_edges)
        if boxed:
            self.out.append("\tend\n")

    def arrow(self, e: Edge) -> str:
        if e.data is None:
            return " -.-> " if e.conditional else " --> "
        label, words = e.data, e.data.split()
        if len(words) > self.wrap:
            label = "&nbsp<br>&nbsp".join(" ".join(words[i : i + self.wrap]) for i in range(0, len(words), self.wrap))
        return f" -. &nbsp;{label}&nbsp; .-> " if e.conditional else f" -- &nbsp;{label}&nbsp; --> "


def _metadata_line(key: str, value: Any) -> str | None:
    """``key = value`` under a node's name, for scalars and lists of them; other values are not shown."""
    scalars = (str, int, float, bool)
    if isinstance(value, scalars):
        text = str(value)
    elif isinstance(value, list | tuple | set) and all(isinstance(v, scalars) for v in value):
        items = [str(v) for v in value]
        text = ", ".join(sorted(items) if isinstance(value, set) else items)
    else:
        return None
    line = f"{key} = {text}".replace("#", "#35;")
    for char, entity in _LABEL_ESCAPES.items():
        line = line.replace(char, entity)
    return line


def _yaml(data: dict[str, Any]) -> str:
    """The frontmatter as PyYAML writes it (with PyYAML when installed, exactly; without it, for the plain
    keys and scalars Mermaid's config takes)."""
    try:
        dump: Any = importlib.import_module("yaml").dump
    except ImportError:
        return "".join(_yaml_lines(data, ""))
    return str(dump(data, default_flow_style=False))


def _yaml_lines(value: dict[str, Any], indent: str) -> Iterable[str]:
    """Block YAML for nested dicts; a value that is not a plain word is JSON, which YAML reads as well."""
    for key, item in sorted(value.items()):
        if isinstance(item, dict) and item:
            yield f"{indent}{key}:\n"
            yield from _yaml_lines(item, indent + "  ")
        else:
            plain = isinstance(item, str) and _YAML_PLAIN.fullmatch(item) and not _YAML_WORDS.fullmatch(item)
            yield f"{indent}{key}: {item if plain else json.dumps(item)}\n"
