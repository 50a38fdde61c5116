"""Russian words to lemmas, shared by the transcript index and its highlighting.

One MorphAnalyzer per process (it is read-only and takes a few MB), and a
cache of word -> lemmas, because calls repeat the same few thousand words.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ..morph import FUNCTION_POS, fold_yo, morph  # noqa: F401  (morph re-exported for admin.questions)
from ..phones import is_russian, national, normalize_phone

WORD_RE = re.compile(r"[0-9A-Za-zА-Яа-яЁё]+(?:-[0-9A-Za-zА-Яа-яЁё]+)*")

MAX_LEMMA_LEN = 64


def normalize(word: str) -> str:
    return fold_yo(word.lower())


@lru_cache(maxsize=200_000)
def lemmas_of(word: str) -> frozenset[str]:
    """All normal forms a (lower-cased) word can have; empty for function words.

    Every parse counts ("стали" is both "стать" and "сталь"), so a search for
    either lexeme finds it; the index stores all of them.
    """
    if word.isdigit():
        return frozenset({word[:MAX_LEMMA_LEN]})
    parses = morph().parse(word)
    if not parses or parses[0].tag.POS in FUNCTION_POS:
        return frozenset()
    return frozenset(normalize(p.normal_form)[:MAX_LEMMA_LEN] for p in parses)


def words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalized word) for each word of text."""
    return [(m.start(), m.end(), normalize(m.group())) for m in WORD_RE.finditer(text or "")]


def text_lemmas(text: str) -> set[str]:
    out: set[str] = set()
    for _, _, word in words(text):
        out |= lemmas_of(word)
    return out


def query_terms(query: str) -> list[frozenset[str]]:
    """A search query as a list of words, each the set of its possible lemmas.

    A call matches when every word matches (AND), a word by any of its lemmas (OR).
    Function words are dropped; duplicates collapse.
    """
    terms: list[frozenset[str]] = []
    for _, _, word in words(query):
        lemmas = lemmas_of(word)
        if lemmas and lemmas not in terms:
            terms.append(lemmas)
    return terms


# A phone number as admins type it: "+7 (912) 345-67-89", "8 912 345 67 89", "9123456789".
PHONE_RE = re.compile(r"\+?\d[\d ()\-]{6,}\d")


def phone_terms(raw: str | None) -> list[str]:
    """The words a caller's number is indexed as: all its digits, and for a Russian
    number the 8… form and the ten national digits (+7 912 345-67-89 → 79123456789,
    89123456789, 9123456789). Empty for what is no full number."""
    phone = normalize_phone(raw)
    if not phone:
        return []
    if is_russian(phone):
        return [phone[1:], "8" + national(phone), national(phone)]
    return [phone[1:]]


def collapse_phones(query: str) -> str:
    """A phone number written with separators as one word, the form phone_terms() indexes
    (a caller's number is found however it is typed)."""
    def one_word(match: re.Match) -> str:
        forms = phone_terms(match.group())
        return f" {forms[-1]} " if forms else match.group()

    return PHONE_RE.sub(one_word, query or "")


def call_query_terms(query: str) -> list[frozenset[str]]:
    """query_terms for the call search (phone numbers collapsed)."""
    return query_terms(collapse_phones(query))
