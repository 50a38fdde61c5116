"""Speakable pieces: a token stream → pieces for TTS, each out the moment it is complete.

A piece is a whole sentence; a long sentence is cut at a clause boundary so
the caller hears something early. Never cut inside a time (8:30), a grouped
number (1 250 000), a model code (ПИ-2000), an abbreviation with its word
(ул. Испытателей, д. 12, т. е.), an e-mail address or a phone number.

Sentence ends are found by razdel (which knows Russian abbreviations); a
sentence is released once the next one has begun or the stream ends. The
streaming splitter asks razdel again only when a token could change its
answer: razdel decides a boundary at a delimiter from a few characters either
side of it, so a token far from any delimiter cannot make a sentence end (and
the buffer is not re-segmented at every token).
"""
from __future__ import annotations

import re

from razdel import sentenize

from ..morph import EMAIL, PHONE

try:  # the characters razdel may cut a sentence at, and how far around one it looks
    from razdel.segmenters.sentenize import DELIMITERS as _RAZDEL_DELIMITERS
    from razdel.segmenters.sentenize import SentSplitter as _SentSplitter

    _RAZDEL_WINDOW = int(_SentSplitter().window)
except (ImportError, AttributeError, TypeError, ValueError):  # another razdel: its documented defaults
    _RAZDEL_DELIMITERS, _RAZDEL_WINDOW = ".?!…;\"„'»”’)]}", 10
# Smileys («:-)», «=(((») are delimiters too: their first characters count, and up to four
# characters of one may lie between a delimiter's start and its right context.
_BOUNDARY_CHARS = frozenset(_RAZDEL_DELIMITERS) | frozenset("=:(")
_BOUNDARY_REACH = _RAZDEL_WINDOW + 4
# A clause cut (_CUTS) is a mark, spaces, then the next word's first character.
_CLAUSE_MARKS = frozenset(";,:—–")
_CLAUSE_REACH = 8

# A sentence longer than this is cut at a clause, if a good cut exists.
LONG_SENTENCE = 140
MIN_CLAUSE = 35

# Spans that must stay whole. A cut position inside any of them is refused.
_PROTECTED = re.compile(
    rf"{EMAIL}"
    rf"|{PHONE}"
    r"|\d+(?:[\s\u00a0]\d{3})+(?:[.,]\d+)?"  # 1 250 000
    r"|\d{1,2}:\d{2}"  # 8:30
    r"|\d+(?:[.,]\d+)+"  # 0,5  9001-2015
    r"|[A-Za-zА-ЯЁа-яё]+-\d+[\w-]*"  # ПИ-2000, Р-5
    r"|\b(?:т\.\s?е\.|т\.\s?к\.|т\.\s?д\.|т\.\s?п\.|и\s?т\.\s?д\.|и\s?т\.\s?п\.)"
    r"|\b(?:ул|д|г|пр|пер|корп|стр|кв|оф|обл|р-н|пос|им|тел|руб|коп|тыс|млн|млрд|шт|мин|сек|см|мм|кг|ок|просп|наб|пл)\.\s*[\w«\"]+",
    re.IGNORECASE,
)
_CONJ = r"(?:и|а|но|или|что|чтобы|который|которая|которые|которое|где|когда|если|потому|поэтому|так как|однако|зато|а также)"
# Preferred cuts first: ";" and ", <conjunction>", then " — ", then any ", " before a word.
_CUTS = [
    re.compile(r";\s+"),
    re.compile(rf",\s+(?={_CONJ}\b)", re.IGNORECASE),
    re.compile(r"\s+[—–]\s+(?=\w)"),
    re.compile(r"(?<!\d),\s+(?=[^\W\d])"),
    re.compile(r":\s+(?=\w)"),
]

_MARKDOWN = [
    (re.compile(r"\*\*|__|`|^#+\s*", re.MULTILINE), ""),
    (re.compile(r"(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.MULTILINE), ""),
]


def clean_for_speech(text: str) -> str:
    """Light TTS normalisation: no markdown, list bullets or doubled spaces."""
    for pattern, repl in _MARKDOWN:
        text = pattern.sub(repl, text)
    return re.sub(r"\s+", " ", text).strip()


def _protected_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _PROTECTED.finditer(text)]


def _inside(pos: int, spans) -> bool:
    return any(a < pos < b for a, b in spans)


def _paren_depth_ok(text: str, pos: int) -> bool:
    head = text[:pos]
    return head.count("(") == head.count(")") and head.count("«") == head.count("»")


def clause_cut(sentence: str, final: bool = True) -> int | None:
    """Where to cut a long sentence: index after the clause mark, or None."""
    if len(sentence) <= LONG_SENTENCE:
        return None
    spans = _protected_spans(sentence)
    for pattern in _CUTS:
        best = None
        for m in pattern.finditer(sentence):
            cut = m.start() + (1 if sentence[m.start()] in ",;:" else 0)
            rest = sentence[m.end():]
            if cut < MIN_CLAUSE or len(rest.strip()) < (MIN_CLAUSE if final else 1):
                continue
            if _inside(m.start(), spans) or _inside(m.end() - 1, spans) or not _paren_depth_ok(sentence, m.start()):
                continue
            if cut > LONG_SENTENCE and best is not None:
                break
            best = cut
            if cut >= LONG_SENTENCE // 2:
                break
        if best is not None:
            return best
    return None


def split_long(sentence: str) -> list[str]:
    pieces = []
    while True:
        cut = clause_cut(sentence)
        if cut is None:
            break
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    pieces.append(sentence.strip())
    return [p for p in pieces if p]


class PieceSplitter:
    """Feed tokens, take pieces: `feed(token) -> [pieces]`, `finish() -> [pieces]`."""

    def __init__(self):
        self.buffer = ""
        self._resegment = True  # the buffer changed other than by appending: ask razdel next time
        self._clause_from = 0  # buffer length at which a clause cut may newly succeed (0: at the next mark)

    def _may_end_sentence(self, old_len: int) -> bool:
        """Could razdel now find a boundary it did not find before? Only near a delimiter."""
        if self._resegment:
            return True
        tail = self.buffer[max(0, old_len - _BOUNDARY_REACH):]
        return not _BOUNDARY_CHARS.isdisjoint(tail)

    def _may_cut_clause(self, old_len: int) -> bool:
        if self._resegment or (self._clause_from and len(self.buffer) >= self._clause_from):
            return True
        tail = self.buffer[max(0, old_len - _CLAUSE_REACH):]
        return not _CLAUSE_MARKS.isdisjoint(tail)

    def feed(self, token: str) -> list[str]:
        if not token:
            return []
        old_len = len(self.buffer)
        self.buffer += token
        out: list[str] = []
        check_clause = len(self.buffer) > LONG_SENTENCE and (old_len <= LONG_SENTENCE or self._may_cut_clause(old_len))
        if self._may_end_sentence(old_len):
            self._resegment = False
            sentences = [s.text for s in sentenize(self.buffer)]
            if len(sentences) > 1:
                # Every sentence but the last is complete: the next one has begun.
                last_start = self.buffer.rfind(sentences[-1])
                for s in sentences[:-1]:
                    out.extend(split_long(s))
                self.buffer = self.buffer[last_start:]
                self._resegment = True  # razdel sees a new start (its left context changed)
                self._clause_from = 0
                check_clause = True
        # A long unfinished sentence: speak its completed clauses already.
        while check_clause and len(self.buffer) > LONG_SENTENCE:
            cut = clause_cut(self.buffer, final=False)
            if cut is None:
                self._clause_from = 0  # nothing until a new mark arrives
                break
            if len(self.buffer) - cut < 20:
                self._clause_from = cut + 20  # this cut holds once 20 characters follow it
                break
            out.append(self.buffer[:cut].strip())
            self.buffer = self.buffer[cut:].lstrip()
            self._resegment = True
            self._clause_from = 0
        return [p for p in (clean_for_speech(x) for x in out) if p]

    def finish(self) -> list[str]:
        rest = self.buffer.strip()
        self.buffer = ""
        self._resegment, self._clause_from = True, 0
        if not rest:
            return []
        out = []
        for s in sentenize(rest):
            out.extend(split_long(s.text))
        return [p for p in (clean_for_speech(x) for x in out) if p]


def split_text(text: str) -> list[str]:
    """A whole text → pieces (the offline answer, fixed phrases)."""
    splitter = PieceSplitter()
    return splitter.feed(text) + splitter.finish()
