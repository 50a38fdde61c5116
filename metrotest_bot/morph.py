"""Russian words, once for every package: the analyzer, ё-folding, function words, e-mail and phone patterns.

pymorphy3's dictionaries take a while to load and tens of MB to hold: the
retrieval, the transcript index, the voice intents and the CRM name checks
all use this one instance (it is thread- and greenlet-safe once built).
"""
import re
import threading

_morph = None
_lock = threading.Lock()

# Parts of speech that carry no meaning of their own: prepositions, conjunctions,
# particles, interjections, pronouns.
FUNCTION_POS = frozenset({"PREP", "CONJ", "PRCL", "INTJ", "NPRO"})

# An e-mail address: local part, «@», a dotted domain («sales@metrotest.ru»).
EMAIL_LOCAL = r"[\w.+-]+"
EMAIL_DOMAIN = r"[\w-]+(?:\.[\w-]+)+"
EMAIL = EMAIL_LOCAL + "@" + EMAIL_DOMAIN
EMAIL_RE = re.compile(EMAIL)
# A Russian phone number as written in a text: +7 or 8, a 3–5-digit code (in brackets or not),
# then the number in groups: «+7 (343) 123-45-67», «8 912 345 67 89», «8(34385)2-12-34».
PHONE = r"(?:\+7|8)[\s-]*\(?\d{3,5}\)?[\s-]*\d{1,3}[\s-]*\d{2}[\s-]*\d{2}"
# The same as a whole token: not the tail of a longer number or word.
PHONE_RE = re.compile(rf"(?:\b|(?=\+)){PHONE}\b")


def fold_yo(text: str) -> str:
    """«ё» written as «е», as most Russian text is typed: «ещё» and «еще» are one word."""
    return text.replace("ё", "е").replace("Ё", "Е")


def morph():
    global _morph
    if _morph is None:
        with _lock:
            if _morph is None:
                import pymorphy3

                _morph = pymorphy3.MorphAnalyzer(lang="ru")
    return _morph
