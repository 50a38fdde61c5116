"""The vocabulary is data (rag/lexicon/), and none of it is dead: every entry is a form the analyser produces."""
import pytest

from metrotest_bot.rag import lexicon
from metrotest_bot.rag.analysis import lemma, lemma_alternatives


def reachable(word: str) -> bool:
    """The analyser yields `word` for some spelling of it: it is one of its own lemmas."""
    if not word.isalpha():
        return True  # «e-mail», units like «°»: matched as tokens, not lemmatised
    return word == lemma(word) or word in lemma_alternatives(word)


@pytest.mark.parametrize("name", ["stop.txt", "light.txt", "anaphora.txt", "parts.txt", "others.txt"])
def test_word_lists_hold_lemmas(name):
    dead = sorted(w for w in lexicon.words(name) if not reachable(w))
    assert not dead, f"{name}: never produced by the analyser: {dead}"


@pytest.mark.parametrize("name", ["synonyms.txt", "canonical.txt", "compounds.txt"])
def test_mapping_keys_are_lemmas(name):
    dead = sorted(k for k in lexicon.mapping(name) if not reachable(k))
    assert not dead, f"{name}: keys the analyser never produces: {dead}"


def test_letter_names_are_surface_words():
    # Spelled codes are matched on the words as said («кэ эм триста»), before lemmatising.
    assert all(len(letter) == 1 for letters in lexicon.mapping("letters.txt").values() for letter in letters)


def test_no_single_question_entries_left():
    """Entries that existed for one question each (issue #11) are gone, and stay gone."""
    synonyms = lexicon.mapping("synonyms.txt")
    for word in ("кубик", "вмятина", "помятый", "чужой", "мощный", "разрывной", "посмотреть", "вживую"):
        assert word not in synonyms, word
    assert "полшестого" not in lexicon.words("stop.txt")
