"""One Russian morphological analyzer per process, shared by every package.

pymorphy3's dictionaries take a while to load and tens of MB to hold: the
retrieval, the transcript index, the voice intents and the CRM name checks
all use this one instance (it is thread- and greenlet-safe once built).
"""
import threading

_morph = None
_lock = threading.Lock()


def morph():
    global _morph
    if _morph is None:
        with _lock:
            if _morph is None:
                import pymorphy3

                _morph = pymorphy3.MorphAnalyzer(lang="ru")
    return _morph
