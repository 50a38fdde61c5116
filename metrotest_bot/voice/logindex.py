"""The call log writer's side of the transcript index: what the ORM flush hooks would do for turns
written by Core statements (search/hooks.py), for logapply.Batch.

A bot turn is saved again at every spoken piece, its text growing at the end. Its words are read
once: a snapshot whose text extends the one read before reads only from the last word of that text
on (issue #16: reading the whole text at every piece is quadratic in the answer's length).
"""
from __future__ import annotations

import logging

from ..search import TurnText, get_index
from ..search.hooks import record_inserted_turn
from ..search.lemmas import words as said_words
from ..search.sql import turn_search_text

log = logging.getLogger(__name__)


def last_word_start(text: str) -> int:
    """Where the word that may go on in a longer text begins (len(text) when text ends between words).

    A word is letters and digits joined by hyphens (search.lemmas.WORD_RE); going back over every
    alphanumeric, `_` and `-` stops at a character no word holds, so no word of the longer text
    straddles the returned position.
    """
    i = len(text)
    while i and (text[i - 1].isalnum() or text[i - 1] in "-_"):
        i -= 1
    return i


class Indexing:
    """Mixed into logapply.Batch (its app, state, words, said and to_index)."""

    outbox: bool | None = None

    def _index(self, session, rec: dict, cid: int, tid: int, cols: dict, inserted: bool) -> None:
        """What the ORM flush hooks would do for this turn: its new words queued, its outbox row."""
        key = rec["call"]
        said = turn_search_text(cols.get("text"), cols.get("spoken_text"))
        if said:
            state = self.state.get(key)
            seen = self._said_before(state, (key, rec["seq"]))
            start = seen[1] if seen is not None and said.startswith(seen[0]) else 0
            self.said[(key, rec["seq"])] = (said, last_word_start(said))
            done = self.words.setdefault(key, set())
            new = {w for _, _, w in said_words(said[start:])} - done - (state.words if state else set())
            if new:
                done |= new  # a later snapshot in this batch indexes only what is newer still
                self.to_index.append((key, TurnText(call_id=cid, turn_id=tid, text=" ".join(sorted(new))), new))
        if inserted and self._outbox():
            record_inserted_turn(session, cid, tid)  # Elasticsearch's outbox row

    def _outbox(self) -> bool:
        """Whether the app's index keeps an outbox (Elasticsearch): looked up once per batch, not per turn."""
        if self.outbox is None:
            self.outbox = getattr(self.app.extensions.get("transcript_index"), "outbox", None) is not None
        return self.outbox

    def _said_before(self, state, tkey: tuple):
        """(text, last word's start) of the turn's text whose words are indexed already, or None."""
        if tkey in self.said:
            return self.said[tkey]
        return state.said.get(tkey[1]) if state is not None and tkey[0] not in self.unsaid else None

    def index(self, session) -> None:
        """The batch's new words in one go (one savepoint and insert, not one per turn snapshot)."""
        if not self.to_index:
            return
        try:
            get_index().index_turns(session, [turn for _, turn, _ in self.to_index])
        except Exception:  # the call log matters more than its index, which can be rebuilt
            log.exception("transcript index: turns %s not indexed", [t.turn_id for _, t, _ in self.to_index])
            for key, _, new in self.to_index:  # not indexed: a later snapshot tries them again, in full
                if new:
                    self.words[key] -= new
                self.unsaid.add(key)
                for tkey in [k for k in self.said if k[0] == key]:
                    del self.said[tkey]
        self.to_index = []
