"""`add_messages` and `MessagesState`: LangGraph's reducer, on LangChain messages and on plain dicts.

The LangChain form is checked against LangGraph's own `add_messages` on the same inputs (skipped without
LangGraph), with `uuid.uuid4` replaced by a counter so that generated ids match too. The dict form runs with
the module's langchain-core check patched to say "absent".
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Annotated, Any, get_type_hints

import pytest

from durable.errors import ConfigurationError, DurableError, InvalidUpdateError, UsageError
from durable.graph import message
from durable.graph.message import REMOVE_ALL_MESSAGES, MessagesState, add_messages

Ids = Callable[[], None]


@pytest.fixture
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ids]:
    """`uuid.uuid4` counts from 1; calling the fixture's value starts the count again."""
    counter: Iterator[uuid.UUID] = iter(())

    def restart() -> None:
        nonlocal counter
        counter = (uuid.UUID(int=n) for n in range(1, 1_000_000))

    restart()
    monkeypatch.setattr(uuid, "uuid4", lambda: next(counter))
    yield restart


def uid(n: int) -> str:
    """The id the n-th call of the patched `uuid.uuid4` gives."""
    return str(uuid.UUID(int=n))


@pytest.fixture
def no_langchain(monkeypatch: pytest.MonkeyPatch) -> None:
    """`add_messages` behaves as if langchain-core were not installed."""
    monkeypatch.setattr(message, "_langchain_available", lambda: False)


# -- the LangChain form, against LangGraph --------------------------------------------------------------------------

Case = Callable[[ModuleType], tuple[Any, Any]]

CASES: dict[str, Case] = {
    "append": lambda m: ([m.HumanMessage("a", id="1")], [m.AIMessage("b", id="2")]),
    "append-to-empty": lambda m: ([], [m.HumanMessage("a", id="1"), m.AIMessage("b", id="2")]),
    "empty-update": lambda m: ([m.HumanMessage("a", id="1")], []),
    "replace-by-id-in-place": lambda m: (
        [m.HumanMessage("a", id="1"), m.AIMessage("b", id="2"), m.HumanMessage("c", id="3")],
        [m.AIMessage("b2", id="2"), m.HumanMessage("d", id="4")],
    ),
    "replace-twice-last-wins": lambda m: (
        [m.HumanMessage("a", id="1")],
        [m.HumanMessage("a2", id="1"), m.HumanMessage("a3", id="1")],
    ),
    "remove-by-id": lambda m: (
        [m.HumanMessage("a", id="1"), m.AIMessage("b", id="2"), m.HumanMessage("c", id="3")],
        [m.RemoveMessage(id="2")],
    ),
    "remove-then-bring-back": lambda m: (
        [m.HumanMessage("a", id="1"), m.AIMessage("b", id="2"), m.HumanMessage("c", id="3")],
        [m.RemoveMessage(id="2"), m.AIMessage("back", id="2")],
    ),
    "remove-one-just-appended": lambda m: (
        [m.HumanMessage("a", id="1")],
        [m.AIMessage("b", id="2"), m.RemoveMessage(id="2")],
    ),
    "remove-all": lambda m: (
        [m.HumanMessage("a", id="1"), m.AIMessage("b", id="2")],
        [m.AIMessage("dropped", id="3"), m.RemoveMessage(id=REMOVE_ALL_MESSAGES), m.HumanMessage("kept", id="4")],
    ),
    "remove-all-alone": lambda m: ([m.HumanMessage("a", id="1")], [m.RemoveMessage(id=REMOVE_ALL_MESSAGES)]),
    "remove-all-last-one-wins-tail-as-is": lambda m: (
        [m.HumanMessage("a", id="1")],
        [
            m.RemoveMessage(id=REMOVE_ALL_MESSAGES),
            m.HumanMessage("x", id="2"),
            m.RemoveMessage(id=REMOVE_ALL_MESSAGES),
            m.HumanMessage("y", id="3"),
            m.HumanMessage("y2", id="3"),
            m.RemoveMessage(id="nowhere"),
        ],
    ),
    "strings-tuples-dicts-coerced": lambda m: (
        ["hello", ("ai", "hi"), {"role": "user", "content": "q"}],
        [
            "more",
            ("assistant", "sure"),
            ["system", "be brief"],
            {"type": "human", "content": "x", "id": "k"},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
    ),
    "missing-ids-assigned-left-first": lambda m: ([m.HumanMessage("a"), m.AIMessage("b")], [m.HumanMessage("c")]),
    "single-message-not-in-a-list": lambda m: (m.HumanMessage("a", id="1"), m.AIMessage("b", id="2")),
    "single-string": lambda m: ([m.HumanMessage("a", id="1")], "hi"),
    "single-tuple": lambda m: ("hi", ("assistant", "yo")),
    "single-dict": lambda m: ([], {"role": "assistant", "content": "yo", "id": "7"}),
    "single-removal": lambda m: ([m.HumanMessage("a", id="1"), m.HumanMessage("b", id="2")], m.RemoveMessage(id="1")),
    "removal-dict": lambda m: ([m.HumanMessage("a", id="1")], [{"type": "remove", "id": "1", "content": ""}]),
    "chunks-become-messages": lambda m: (
        [m.AIMessageChunk("partial", id="1")],
        [m.AIMessageChunk("whole", id="1"), m.HumanMessageChunk("h")],
    ),
    "tool-calls-kept": lambda m: (
        [],
        [
            m.AIMessage("", id="1", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}]),
            m.ToolMessage("done", tool_call_id="c1", id="2"),
        ],
    ),
}


def same_object_twice(m: ModuleType) -> tuple[Any, Any]:
    shared = m.HumanMessage("twice")
    return [shared], [shared, m.AIMessage("b")]


CASES["same-object-twice-one-id"] = same_object_twice


def run_both(case: Case, restart: Ids, **kwargs: Any) -> tuple[list[Any], list[Any]]:
    """(durable's result, LangGraph's result) on fresh copies of the case's inputs, ids counted from 1 each."""
    langgraph_message = pytest.importorskip("langgraph.graph.message")
    messages = pytest.importorskip("langchain_core.messages")
    restart()
    ours = add_messages(*case(messages), **kwargs)
    restart()
    theirs = langgraph_message.add_messages(*case(messages), **kwargs)
    return ours, theirs


def assert_same(ours: list[Any], theirs: list[Any]) -> None:
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    assert [m.id for m in ours] == [m.id for m in theirs]
    assert ours == theirs


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_langchain_messages_merge_as_langgraph_merges_them(case: Case, fixed_ids: Ids) -> None:
    """Appends, replacements, removals, REMOVE_ALL_MESSAGES and coercions give LangGraph's result, ids included."""
    ours, theirs = run_both(case, fixed_ids)
    assert_same(ours, theirs)


def test_a_replacement_keeps_the_position(fixed_ids: Ids) -> None:
    """The replaced message stays where it was; new ones go at the end."""
    ours, _ = run_both(CASES["replace-by-id-in-place"], fixed_ids)
    assert [(m.id, m.content) for m in ours] == [("1", "a"), ("2", "b2"), ("3", "c"), ("4", "d")]


def test_coerced_messages_have_the_right_types_and_new_ids(fixed_ids: Ids) -> None:
    """A string is a HumanMessage, a (role, content) pair or a dict the message of its role; each gets a uuid4 id."""
    messages = pytest.importorskip("langchain_core.messages")
    fixed_ids()
    result = add_messages("hi", [("assistant", "yo"), {"role": "system", "content": "s"}])
    assert [type(m) for m in result] == [messages.HumanMessage, messages.AIMessage, messages.SystemMessage]
    assert [m.id for m in result] == [uid(1), uid(2), uid(3)]


def test_remove_all_drops_everything_before_it(fixed_ids: Ids) -> None:
    """Only what follows the REMOVE_ALL_MESSAGES removal in the update is left."""
    ours, _ = run_both(CASES["remove-all"], fixed_ids)
    assert [m.content for m in ours] == ["kept"]
    assert REMOVE_ALL_MESSAGES == pytest.importorskip("langgraph.graph.message").REMOVE_ALL_MESSAGES


def test_removing_a_missing_id_fails_as_in_langgraph() -> None:
    """A removal of an id that neither side has is an error, in LangGraph as here."""
    langgraph_message = pytest.importorskip("langgraph.graph.message")
    messages = pytest.importorskip("langchain_core.messages")

    def inputs() -> tuple[list[Any], list[Any]]:
        return [messages.HumanMessage("a", id="1")], [messages.RemoveMessage(id="2")]

    with pytest.raises(ValueError, match="doesn't exist"):
        langgraph_message.add_messages(*inputs())
    with pytest.raises(InvalidUpdateError, match="'2'") as info:
        add_messages(*inputs())
    assert isinstance(info.value, ValueError)


def test_the_openai_format_gives_langgraphs_result(fixed_ids: Ids) -> None:
    """format="langchain-openai" reformats as LangGraph does (which drops the ids)."""
    ours, theirs = run_both(CASES["tool-calls-kept"], fixed_ids, format="langchain-openai")
    assert_same(ours, theirs)
    assert [m.id for m in ours] == [None, None]
    ours, theirs = run_both(CASES["strings-tuples-dicts-coerced"], fixed_ids, format="langchain-openai")
    assert_same(ours, theirs)


def test_a_remove_all_update_is_returned_unformatted_as_in_langgraph(fixed_ids: Ids) -> None:
    """LangGraph returns the tail after REMOVE_ALL_MESSAGES before formatting: so does durable."""
    ours, theirs = run_both(CASES["remove-all"], fixed_ids, format="langchain-openai")
    assert_same(ours, theirs)
    assert [m.id for m in ours] == ["4"]


def test_called_with_keywords_only_it_returns_the_reducer(fixed_ids: Ids) -> None:
    """`add_messages(format=...)` is the reducer with that format, as LangGraph's partial is."""
    langgraph_message = pytest.importorskip("langgraph.graph.message")
    messages = pytest.importorskip("langchain_core.messages")
    for fmt in (None, "langchain-openai"):
        reducer = add_messages(format=fmt)
        assert callable(reducer)
        fixed_ids()
        ours = reducer(*CASES["tool-calls-kept"](messages))
        fixed_ids()
        theirs = langgraph_message.add_messages(format=fmt)(*CASES["tool-calls-kept"](messages))
        assert_same(ours, theirs)


def test_the_caller_s_messages_are_not_changed(fixed_ids: Ids) -> None:
    """Unlike LangGraph (which sets ids in place), durable gives a copy the new id."""
    messages = pytest.importorskip("langchain_core.messages")
    fixed_ids()
    left = [messages.HumanMessage("a")]
    right = [messages.AIMessage("b")]
    result = add_messages(left, right)
    assert [m.id for m in result] == [uid(1), uid(2)]
    assert left[0].id is None
    assert right[0].id is None
    assert len(left) == 1
    assert len(right) == 1


def test_a_message_with_an_id_is_kept_as_the_same_object() -> None:
    """Messages that already have an id are not copied."""
    messages = pytest.importorskip("langchain_core.messages")
    a, b = messages.HumanMessage("a", id="1"), messages.AIMessage("b", id="2")
    result = add_messages([a], [b])
    assert result[0] is a
    assert result[1] is b


def test_durables_reducer_works_in_a_langgraph_state_graph() -> None:
    """LangGraph's StateGraph reads durable's MessagesState and its reducer as its own."""
    graph = pytest.importorskip("langgraph.graph")
    messages = pytest.importorskip("langchain_core.messages")

    class State(MessagesState):
        turns: int

    def reply(state: State) -> dict[str, Any]:
        return {"messages": [("assistant", f"echo {state['messages'][-1].content}")], "turns": 1}

    builder = graph.StateGraph(State)
    builder.add_node("reply", reply)
    builder.add_edge(graph.START, "reply")
    out = builder.compile().invoke({"messages": [("user", "hi")], "turns": 0})
    assert [type(m) for m in out["messages"]] == [messages.HumanMessage, messages.AIMessage]
    assert [m.content for m in out["messages"]] == ["hi", "echo hi"]
    assert all(m.id for m in out["messages"])
    assert out["turns"] == 1


def test_the_same_update_in_dict_form_gives_the_same_conversation(
    monkeypatch: pytest.MonkeyPatch, fixed_ids: Ids
) -> None:
    """A dict-form result, read by langchain-core, is LangGraph's result on the same inputs."""
    langgraph_message = pytest.importorskip("langgraph.graph.message")
    messages = pytest.importorskip("langchain_core.messages")

    def inputs() -> tuple[list[Any], list[Any]]:
        return (
            ["hi", {"role": "assistant", "content": "yo", "id": "a"}],
            [
                ("user", "again"),
                {"role": "assistant", "content": "yo!", "id": "a"},
                {"type": "remove", "id": uid(1), "content": ""},
            ],
        )

    fixed_ids()
    theirs = langgraph_message.add_messages(*inputs())
    monkeypatch.setattr(message, "_langchain_available", lambda: False)
    fixed_ids()
    ours = add_messages(*inputs())
    assert all(isinstance(m, dict) for m in ours)
    assert messages.convert_to_messages(ours) == theirs


# -- the call's arguments ------------------------------------------------------------------------------------------


def test_only_one_side_given_is_an_error() -> None:
    """`left` without `right` (or the reverse) raises a ValueError, as in LangGraph."""
    with pytest.raises(ConfigurationError, match="got right=None"):
        add_messages([], None)
    with pytest.raises(ValueError, match="got left=None"):
        add_messages(None, [])
    with pytest.raises(ValueError, match="got left=None"):
        add_messages(right=[], format=None)  # type: ignore[call-overload]


def test_an_unknown_format_is_refused_at_once() -> None:
    """An unknown format raises a ConfigurationError naming it, when the reducer is made and on every merge.

    LangGraph checks the format after merging only, so it lets a REMOVE_ALL_MESSAGES update through: durable
    does not.
    """
    markdown: Any = "markdown"
    with pytest.raises(ConfigurationError, match="'markdown'"):
        add_messages(format=markdown)
    with pytest.raises(ValueError, match="'markdown'"):
        add_messages([], [{"role": "user", "content": "x"}], format=markdown)
    with pytest.raises(ConfigurationError, match="'markdown'"):
        add_messages([], [{"type": "remove", "id": REMOVE_ALL_MESSAGES, "content": ""}], format=markdown)


def test_the_errors_are_durable_errors() -> None:
    """The argument errors are DurableErrors (and ValueErrors, LangGraph's type for them)."""
    with pytest.raises(DurableError):
        add_messages([], None)
    bad: Any = "x"
    with pytest.raises(DurableError):
        add_messages(format=bad)


# -- MessagesState and the import -----------------------------------------------------------------------------------


def test_messages_state_annotates_messages_with_the_reducer() -> None:
    """`messages` is `Annotated[list[Any], add_messages]`."""
    hints = get_type_hints(MessagesState, include_extras=True)
    assert hints == {"messages": Annotated[list[Any], add_messages]}


def test_messages_state_can_be_extended() -> None:
    """A subclass adds its keys and keeps `messages` with its reducer."""

    class State(MessagesState):
        extra: str

    hints = get_type_hints(State, include_extras=True)
    assert hints["messages"] == Annotated[list[Any], add_messages]
    assert hints["extra"] is str
    state: State = {"messages": [], "extra": "x"}
    assert state["extra"] == "x"


@pytest.mark.subprocess
def test_importing_the_module_does_not_import_langchain() -> None:
    """langchain-core is looked for on the first merge, not on import."""
    code = (
        "import sys\n"
        "import durable.graph.message as m\n"
        "assert 'langchain_core' not in sys.modules, 'imported langchain_core'\n"
        "m.add_messages(format=None)\n"
        "assert 'langchain_core' not in sys.modules, 'imported langchain_core'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_langchain_check_is_cached_and_right() -> None:
    """The check says whether langchain-core can be found, and is computed once."""
    import importlib.util

    assert message._langchain_available() is (importlib.util.find_spec("langchain_core") is not None)
    assert message._langchain_available.cache_info().currsize == 1


# -- the dict form (langchain-core treated as absent) ---------------------------------------------------------------


dict_form = pytest.mark.usefixtures("no_langchain", "fixed_ids")


@dict_form
def test_dicts_append() -> None:
    """A dict with a new id is appended."""
    left = [{"role": "user", "content": "a", "id": "1"}]
    right = [{"role": "assistant", "content": "b", "id": "2"}]
    assert add_messages(left, right) == left + right


@dict_form
def test_dicts_replace_by_id_in_place() -> None:
    """A dict with a known id replaces the old one where it stands."""
    left = [{"role": "user", "content": c, "id": str(i)} for i, c in enumerate("abc")]
    right = [{"role": "user", "content": "B", "id": "1"}, {"role": "user", "content": "d", "id": "3"}]
    assert [(m["id"], m["content"]) for m in add_messages(left, right)] == [
        ("0", "a"),
        ("1", "B"),
        ("2", "c"),
        ("3", "d"),
    ]


@dict_form
def test_dicts_remove_by_id() -> None:
    """A {"type": "remove", "id": ...} dict deletes the message with that id (no "content" needed)."""
    left = [{"role": "user", "content": c, "id": str(i)} for i, c in enumerate("abc")]
    result = add_messages(left, [{"type": "remove", "id": "1"}])
    assert [m["id"] for m in result] == ["0", "2"]


@dict_form
def test_dicts_remove_then_bring_back_and_remove_one_just_added() -> None:
    """A removed id given again comes back in place; a message added and removed in one update is gone."""
    left = [{"role": "user", "content": c, "id": str(i)} for i, c in enumerate("abc")]
    right = [
        {"type": "remove", "id": "1"},
        {"role": "user", "content": "B", "id": "1"},
        {"role": "user", "content": "new", "id": "9"},
        {"role": "remove", "id": "9", "content": ""},
    ]
    assert [(m["id"], m["content"]) for m in add_messages(left, right)] == [("0", "a"), ("1", "B"), ("2", "c")]


@dict_form
def test_dicts_remove_missing_id_is_an_error() -> None:
    """Removing an id that is not there is an error."""
    with pytest.raises(InvalidUpdateError, match="'nope'"):
        add_messages([{"role": "user", "content": "a", "id": "1"}], [{"type": "remove", "id": "nope"}])


@dict_form
def test_dicts_remove_all() -> None:
    """A removal of REMOVE_ALL_MESSAGES leaves only what follows it in the update."""
    left = [{"role": "user", "content": "a", "id": "1"}]
    tail = [{"role": "user", "content": "kept", "id": "3"}, {"type": "remove", "id": "not-checked"}]
    right = [
        {"role": "user", "content": "dropped", "id": "2"},
        {"type": "remove", "id": REMOVE_ALL_MESSAGES},
        {"role": "user", "content": "dropped too", "id": "4"},
        {"type": "remove", "id": REMOVE_ALL_MESSAGES},
        *tail,
    ]
    assert add_messages(left, right) == tail  # the last one wins; the rest is returned as it is, as LangGraph does
    assert add_messages(left, {"type": "remove", "id": REMOVE_ALL_MESSAGES}) == []


@dict_form
def test_dicts_strings_and_pairs_are_coerced_with_new_ids() -> None:
    """A string is a "user" dict, a pair a dict of its role; a "type" dict is kept; all get uuid4 ids."""
    result = add_messages("hi", [("assistant", "yo"), ["system", "s"], {"type": "human", "content": "h"}])
    assert result == [
        {"role": "user", "content": "hi", "id": uid(1)},
        {"role": "assistant", "content": "yo", "id": uid(2)},
        {"role": "system", "content": "s", "id": uid(3)},
        {"type": "human", "content": "h", "id": uid(4)},
    ]


@dict_form
def test_dicts_single_message_not_in_a_list() -> None:
    """Either side may be a single message."""
    assert add_messages({"role": "user", "content": "a", "id": "1"}, ("ai", "b")) == [
        {"role": "user", "content": "a", "id": "1"},
        {"role": "ai", "content": "b", "id": uid(1)},
    ]
    assert add_messages([], "x") == [{"role": "user", "content": "x", "id": uid(2)}]


@dict_form
def test_dicts_the_callers_dicts_are_not_changed() -> None:
    """A dict without an id is copied to get one; a dict with an id is returned as it is."""
    without_id = {"role": "user", "content": "a"}
    with_id = {"role": "user", "content": "b", "id": "7"}
    left = [without_id]
    result = add_messages(left, [with_id])
    assert without_id == {"role": "user", "content": "a"}
    assert result[0] == {"role": "user", "content": "a", "id": uid(1)}
    assert result[0] is not without_id
    assert result[1] is with_id
    assert left == [without_id]


@dict_form
def test_dicts_the_same_dict_twice_gets_one_id() -> None:
    """The same dict object without an id gets one id, so it is merged with itself."""
    shared = {"role": "user", "content": "a"}
    assert add_messages([shared], [shared]) == [{"role": "user", "content": "a", "id": uid(1)}]


@dict_form
def test_dicts_keep_their_other_keys() -> None:
    """Keys other than role, content and id go through untouched."""
    call = {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "args": {}, "id": "c"}]}
    result = add_messages([call], {"role": "tool", "content": "r", "tool_call_id": "c", "name": "f"})
    assert result == [
        {**call, "id": uid(1)},
        {"role": "tool", "content": "r", "tool_call_id": "c", "name": "f", "id": uid(2)},
    ]


BAD_DICT_MESSAGES: dict[str, tuple[Any, type[Exception], str]] = {
    "no-role": ({"content": "x"}, ConfigurationError, "'role'"),
    "no-content": ({"role": "user"}, ConfigurationError, "'content'"),
    "unknown-role": ({"role": "robot", "content": "x"}, ConfigurationError, "'robot'"),
    "role-not-text": ({"role": ["user"], "content": "x"}, ConfigurationError, "unknown message role"),
    "triple": (("user", "x", "y"), ConfigurationError, "pair"),
    "removal-pair": (("remove", "1"), ConfigurationError, "removal is a dict"),
    "unknown-pair-role": (("robot", "x"), ConfigurationError, "'robot'"),
    "removal-without-id": ({"type": "remove"}, ConfigurationError, "names the id"),
    "number": (42, UsageError, "int"),
    "none-in-list": ([None], UsageError, "NoneType"),
}


@dict_form
@pytest.mark.parametrize(("bad", "error", "match"), BAD_DICT_MESSAGES.values(), ids=BAD_DICT_MESSAGES.keys())
def test_dicts_what_is_not_a_message_is_refused(bad: Any, error: type[Exception], match: str) -> None:
    """What langchain-core would refuse is refused on either side, saying why."""
    with pytest.raises(error, match=match):
        add_messages([], bad)
    with pytest.raises(error, match=match):
        add_messages(bad, [])


@dict_form
def test_dicts_the_openai_format_needs_langchain() -> None:
    """format='langchain-openai' without langchain-core says what to install."""
    with pytest.raises(ConfigurationError, match="langchain-core"):
        add_messages([], "x", format="langchain-openai")
    reducer = add_messages(format="langchain-openai")  # the check waits for the first merge
    with pytest.raises(ConfigurationError, match="langchain-core"):
        reducer([], "x")


@dict_form
def test_dicts_the_keyword_only_call_returns_the_reducer() -> None:
    """add_messages() is the reducer in the dict form too."""
    reducer = add_messages()
    assert reducer([{"role": "user", "content": "a", "id": "1"}], "b") == [
        {"role": "user", "content": "a", "id": "1"},
        {"role": "user", "content": "b", "id": uid(1)},
    ]


@dict_form
def test_dicts_nothing_from_langchain_is_imported_or_returned() -> None:
    """The results are plain dicts."""
    result = add_messages(["a"], [("assistant", "b")])
    assert all(type(m) is dict for m in result)
