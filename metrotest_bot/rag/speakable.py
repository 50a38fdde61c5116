"""Speakable pieces: a token stream → pieces for TTS, each out the moment it is complete.

A piece is a whole sentence; a long sentence is cut at a clause boundary so
the caller hears something early. Never cut inside a time (8:30), a grouped
number (1 250 000), a model code (ПИ-2000), an abbreviation with its word
(ул. Испытателей, д. 12, т. е.), an e-mail address or a phone number.

Sentence ends are found by razdel (which knows Russian abbreviations); a
sentence is released once the next one has begun or the stream ends.
"""
from __future__ import annotations

import re

from razdel import sentenize

# A sentence longer than this is cut at a clause, if a good cut exists.
LONG_SENTENCE = 140
MIN_CLAUSE = 35

# Spans that must stay whole. A cut position inside any of them is refused.
_PROTECTED = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail
    r"|(?:\+7|8)[\s-]*\(?\d{3,5}\)?[\s-]*\d{1,3}[\s-]*\d{2}[\s-]*\d{2}"  # phone numbers
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

    def feed(self, token: str) -> list[str]:
        self.buffer += token
        out: list[str] = []
        sentences = [s.text for s in sentenize(self.buffer)]
        if len(sentences) > 1:
            # Every sentence but the last is complete: the next one has begun.
            last_start = self.buffer.rfind(sentences[-1])
            for s in sentences[:-1]:
                out.extend(split_long(s))
            self.buffer = self.buffer[last_start:]
        # A long unfinished sentence: speak its completed clauses already.
        while len(self.buffer) > LONG_SENTENCE:
            cut = clause_cut(self.buffer, final=False)
            if cut is None or len(self.buffer) - cut < 20:
                break
            out.append(self.buffer[:cut].strip())
            self.buffer = self.buffer[cut:].lstrip()
        return [p for p in (clean_for_speech(x) for x in out) if p]

    def finish(self) -> list[str]:
        rest = self.buffer.strip()
        self.buffer = ""
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
