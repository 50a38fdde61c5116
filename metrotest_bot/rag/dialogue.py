"""A call's memory: the last few exchanges, for follow-ups and for the LLM.

Owned by the call's session (one per call, never global). The engine reads
the last analysed question to resolve a follow-up («а сколько такой
стоит»), and the LLM gets the exchanges as chat messages.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MAX_EXCHANGES = 4  # a phone call's follow-ups lean on the last turn or two; older ones only cost tokens
# A follow-up's model reads its own passages, then those it read for the turn before, up to this many: «а почём»
# after a machine's description finds the price passage by the carried words only when they are the right
# ones, and the passage read last time often holds the price or the model name.
MAX_CONTEXT = 12


@dataclass
class Exchange:
    question: str
    answer: str  # what the caller heard (the part spoken, when interrupted)
    query: object | None  # the analysed question (rag.query.Query), follow-up resolved
    passages: tuple = ()  # what the answer read (rag.types.Passage)
    answer_id: str | None = None


class Dialogue:
    def __init__(self, max_exchanges: int = MAX_EXCHANGES):
        self.exchanges: deque[Exchange] = deque(maxlen=max_exchanges)

    def add(self, question: str, answer: str, query=None, passages=(), answer_id: str | None = None) -> None:
        self.exchanges.append(Exchange(question, answer, query, tuple(passages), answer_id))

    def cut(self, answer_id: str, heard: str) -> None:
        """An answer all sent, cut while its speech still played: the call remembers what was heard of it
        (the LLM's view of the call, and what a follow-up's reply may say again)."""
        for ex in self.exchanges:
            if ex.answer_id == answer_id:
                ex.answer = heard

    @property
    def last_query(self):
        return self.exchanges[-1].query if self.exchanges else None

    @property
    def last_answer(self) -> str:
        """What the caller heard last ("" before the first answer)."""
        return self.exchanges[-1].answer if self.exchanges else ""

    def context(self, query, passages: list) -> list:
        """The passages a model reads for this question: its own, then, for a follow-up (it carried the
        call's topic), those read for the last turn that it does not have, MAX_CONTEXT in all."""
        if not self.exchanges or not getattr(query, "carried", False):
            return passages
        have = {p.id for p in passages}
        earlier = [p for p in self.exchanges[-1].passages if p.id not in have]
        return (list(passages) + earlier)[:max(MAX_CONTEXT, len(passages))]

    def messages(self) -> list[dict]:
        """The exchanges as chat messages, oldest first."""
        out: list[dict] = []
        for ex in self.exchanges:
            out.append({"role": "user", "content": ex.question})
            if ex.answer:
                out.append({"role": "assistant", "content": ex.answer})
        return out

    def __len__(self) -> int:
        return len(self.exchanges)
