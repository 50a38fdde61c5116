"""Highlighting of search matches by lemma, the same way the index matches them."""
from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape
from sqlalchemy import select

from ..extensions import db
from ..models import Turn
from .lemmas import lemmas_of, query_terms, words
from .sql import turn_search_text


@dataclass
class Snippet:
    call_id: int
    seq: int
    role: str
    html: Markup


def match_spans(text: str, terms: list[frozenset[str]]) -> list[tuple[int, int, int]]:
    """(start, end, term index) of each word of text that is a form of a query word."""
    spans = []
    for start, end, word in words(text):
        lemmas = lemmas_of(word)
        if not lemmas:
            continue
        for i, term in enumerate(terms):
            if lemmas & term:
                spans.append((start, end, i))
                break
    return spans


def _marked(text: str, spans, lo: int, hi: int) -> Markup:
    out, pos = [], lo
    for start, end, _ in spans:
        if start < lo or end > hi:
            continue
        out.append(escape(text[pos:start]))
        out.append(Markup("<mark>%s</mark>") % text[start:end])
        pos = end
    out.append(escape(text[pos:hi]))
    return Markup("").join(out)


def highlight(text: str, terms: list[frozenset[str]]) -> Markup:
    """The whole text, escaped, with matches in <mark>."""
    text = text or ""
    return _marked(text, match_spans(text, terms), 0, len(text))


def excerpt(text: str, spans, before: int = 70, after: int = 110) -> Markup:
    """A window of text around the first match, cut at spaces."""
    if not spans:
        return escape(text[: before + after])
    first = spans[0][0]
    lo = max(0, first - before)
    hi = min(len(text), spans[0][1] + after)
    if lo > 0:
        space = text.find(" ", lo, first)
        lo = space + 1 if space != -1 else lo
    if hi < len(text):
        space = text.rfind(" ", spans[0][1], hi)
        hi = space if space != -1 else hi
    html = _marked(text, spans, lo, hi)
    return (Markup("…") if lo > 0 else Markup("")) + html + (Markup("…") if hi < len(text) else Markup(""))


def snippets(query: str, call_ids: list[int]) -> dict[int, Snippet]:
    """For each call, the turn that matches most query words, as a highlighted excerpt."""
    terms = query_terms(query)
    if not terms or not call_ids:
        return {}
    rows = db.session.execute(
        select(Turn.call_id, Turn.seq, Turn.role, Turn.text, Turn.spoken_text)
        .where(Turn.call_id.in_(call_ids)).order_by(Turn.call_id, Turn.seq))
    best: dict[int, tuple[int, Snippet]] = {}
    for cid, seq, role, text, spoken in rows:
        text = turn_search_text(text, spoken)
        spans = match_spans(text, terms)
        score = len({i for _, _, i in spans})
        if score and score > best.get(cid, (0, None))[0]:
            best[cid] = (score, Snippet(cid, seq, role, excerpt(text, spans)))
    return {cid: snip for cid, (_, snip) in best.items()}
