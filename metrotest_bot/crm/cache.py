"""A short per-number memory of CRM answers, per process, bounded in size (cachetools' TLRUCache).

A caller who rings back a minute later is greeted at once; "unknown" is
remembered too, so a stream of calls from one unknown number does not hit
the CRM each time. Failures (timeouts, errors) are not remembered: the next
call asks again. Each entry keeps the TTL in force when it was stored
(CRM_CACHE_TTL may differ between apps of one process, as in tests).
"""
from __future__ import annotations

import copy
import threading

from cachetools import TLRUCache


def _expires(_key, entry, now):
    return now + entry[0]


class TTLCache:
    def __init__(self, max_size: int = 1024):
        self._data = TLRUCache(maxsize=max_size, ttu=_expires)
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe

    def get(self, key):
        """(True, value) for a fresh entry, (False, None) otherwise. Values come back as copies."""
        with self._lock:
            entry = self._data.get(key)
        if entry is None:
            return False, None
        return True, copy.deepcopy(entry[1])

    def put(self, key, value, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._data[key] = (ttl, copy.deepcopy(value))

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            self._data.expire()
            return len(self._data)
