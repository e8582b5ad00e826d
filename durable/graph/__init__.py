"""LangGraph's Graph API on durable's journal: ``StateGraph``, compiled and run durably.

>>> from typing import Annotated, TypedDict
>>> import operator
>>> from durable import MemoryStore
>>> from durable.graph import StateGraph, START, END
>>> class State(TypedDict):
...     steps: Annotated[list[str], operator.add]
>>> builder = StateGraph(State)
>>> _ = builder.add_node("hello", lambda state: {"steps": ["hello"]})
>>> _ = builder.add_edge(START, "hello").add_edge("hello", END)
>>> graph = builder.compile(checkpointer=MemoryStore())
>>> graph.invoke({"steps": []}, {"configurable": {"thread_id": "1"}})
{'steps': ['hello']}

Each node run is one journaled task: a crash, a failed node or an ``interrupt()`` loses no node
that finished, and ``invoke(None, config)`` runs only what had not. ``Send``, ``Command`` and
``interrupt`` come from `durable`, as the rest of the porting table in the README says.
"""

from .._interrupts import Command, Send
from ..errors import GraphRecursionError, InvalidUpdateError
from ._builder import END, START, StateGraph
from ._channels import Overwrite
from ._compiled import CompiledStateGraph
from ._schema import IsLastStep, RemainingSteps
from .message import REMOVE_ALL_MESSAGES, MessagesState, add_messages

__all__ = [
    "END",
    "REMOVE_ALL_MESSAGES",
    "START",
    "Command",
    "CompiledStateGraph",
    "GraphRecursionError",
    "InvalidUpdateError",
    "IsLastStep",
    "MessagesState",
    "Overwrite",
    "RemainingSteps",
    "Send",
    "StateGraph",
    "add_messages",
]
