"""Vocabulary of phone Russian, as data: read once per process.

Only general words live here (how callers speak, units, function words);
anything about one company comes from its KB (titles, model codes, units).
tests/test_rag_lexicon.py checks that every entry is a lemma the analyser
can produce, so none is dead.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent


def _lines(name: str) -> list[str]:
    return [line.strip() for line in (HERE / name).read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@lru_cache(maxsize=None)
def words(name: str) -> frozenset[str]:
    """A word list: one lemma a line."""
    return frozenset(_lines(name))


@lru_cache(maxsize=None)
def mapping(name: str) -> dict[str, tuple[str, ...]]:
    """`key: value, value` lines."""
    out: dict[str, tuple[str, ...]] = {}
    for line in _lines(name):
        key, _, values = line.partition(":")
        out[key.strip()] = tuple(v.strip() for v in values.split(",") if v.strip())
    return out


FILES = ("stop.txt", "light.txt", "canonical.txt", "compounds.txt", "synonyms.txt", "letters.txt",
         "anaphora.txt", "parts.txt", "others.txt")
WORD_LISTS = ("stop.txt", "light.txt", "anaphora.txt", "parts.txt", "others.txt")


def entry_count() -> int:
    """Hand-written vocabulary entries (words and mapping keys), for BENCHMARKS.md."""
    return sum(len(words(f)) if f in WORD_LISTS else len(mapping(f)) for f in FILES)
