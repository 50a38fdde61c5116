"""A caller's name as the bot may say it: first name and patronymic.

CRM name fields hold whatever was typed: "Иванов Иван Петрович" in one field,
"ИВАН" in capitals, "Бухгалтерия" or "Иван (склад)" instead of a person. The
bot addresses a caller by name only when the words really are a given name
(and a patronymic), checked with pymorphy's name tags, so it never greets
anyone as «Здравствуйте, Бухгалтерия!».
"""
from __future__ import annotations

import re

from ..morph import morph as _analyzer

_TOKEN = re.compile(r"^[A-Za-zА-Яа-яЁё]+(?:[-'][A-Za-zА-Яа-яЁё]+)*$")
_MAX_TOKEN = 30


def _has_tag(word: str, tag: str) -> bool:
    """Some reading of the word is a singular nominative with `tag` (Name, Patr, Surn)."""
    return any({tag, "sing", "nomn"} <= set(p.tag.grammemes) for p in _analyzer().parse(word))


def _known(word: str) -> bool:
    return any(p.is_known for p in _analyzer().parse(word))


def clean_token(word: str | None) -> str | None:
    """One name word, capitalized ("иван", "ИВАН" -> "Иван"), or None if it is not a word."""
    if not word:
        return None
    word = word.strip()
    if not word or len(word) > _MAX_TOKEN or not _TOKEN.match(word):
        return None
    return re.sub(r"[A-Za-zА-Яа-яЁё]+", lambda m: m.group(0)[:1].upper() + m.group(0)[1:].lower(), word)


def _tokens(text: str | None) -> list[str] | None:
    """Words of a name field; None when anything in it is not a name word (digits, brackets)."""
    if not text or not text.strip():
        return []
    out = []
    for raw in text.split():
        tok = clean_token(raw)
        if tok is None:
            return None
        out.append(tok)
    return out


def is_first_name(word: str, explicit: bool = False) -> bool:
    """A given name. From an explicit first-name field, an unknown word (a rare
    name the dictionary lacks) also passes; a known ordinary noun never does."""
    if _has_tag(word, "Name"):
        return True
    return explicit and not _known(word) and not _has_tag(word, "Patr")


def is_patronymic(word: str) -> bool:
    return _has_tag(word, "Patr")


def resolve(first: str | None = None, patronymic: str | None = None, last: str | None = None,
            full: str | None = None) -> tuple[str | None, str | None, str | None]:
    """(first name, patronymic, last name), each None unless it is fit to be spoken."""
    firsts, patrs, lasts = _tokens(first), _tokens(patronymic), _tokens(last)
    f = p = None
    if firsts:
        # "Иван Петрович" typed into the first-name field.
        if len(firsts) == 2 and not patrs and is_patronymic(firsts[1]):
            firsts, patrs = firsts[:1], firsts[1:]
        if len(firsts) == 1 and is_first_name(firsts[0], explicit=True):
            f = firsts[0]
    if f is None and not firsts:
        f, p_from_full = _from_full(full)
        if f and not patrs:
            p = p_from_full
    if f and p is None and patrs and len(patrs) == 1 and (is_patronymic(patrs[0]) or not _known(patrs[0])):
        p = patrs[0]
    if f and p is None and not patrs and full:
        # amoCRM keeps "Кузнецова Ольга Викторовна" in name but only "Ольга" in first_name.
        words = _tokens(full) or []
        for i, w in enumerate(words[:-1]):
            if w == f and is_patronymic(words[i + 1]):
                p = words[i + 1]
                break
    l = " ".join(lasts) if lasts else None
    if l is None and full and f:
        rest = [t for t in (_tokens(full) or []) if t not in (f, p)]
        l = " ".join(rest) or None
    return f, p, l


def _from_full(full: str | None) -> tuple[str | None, str | None]:
    """First name and patronymic found in a free-text full name, in any order of parts."""
    words = _tokens(full)
    if not words:
        return None, None
    for i, w in enumerate(words):
        if is_first_name(w) and i + 1 < len(words) and is_patronymic(words[i + 1]):
            return w, words[i + 1]
    names = [w for w in words if is_first_name(w)]
    if len(names) == 1 and len(words) <= 3:
        return names[0], None
    return None, None


def address(first: str | None, patronymic: str | None) -> str | None:
    """How the bot addresses the caller: «Иван Петрович», or «Иван»."""
    if not first:
        return None
    return f"{first} {patronymic}" if patronymic else first
