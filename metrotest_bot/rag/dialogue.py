"""A call's memory: the last few exchanges, for follow-ups and for the LLM.

Owned by the call's session (one per call, never global). The engine reads
the last analysed question to resolve a follow-up («а сколько такой
стоит»), and the LLM gets the exchanges as chat messages.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MAX_EXCHANGES = 4  # a phone call's follow-ups lean on the last turn or two; older ones only cost tokens


@dataclass
class Exchange:
    question: str
    answer: str  # what the caller heard (the part spoken, when interrupted)
    query: object | None  # the analysed question (rag.query.Query), follow-up resolved


class Dialogue:
    def __init__(self, max_exchanges: int = MAX_EXCHANGES):
        self.exchanges: deque[Exchange] = deque(maxlen=max_exchanges)

    def add(self, question: str, answer: str, query=None) -> None:
        self.exchanges.append(Exchange(question, answer, query))

    @property
    def last_query(self):
        return self.exchanges[-1].query if self.exchanges else None

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
