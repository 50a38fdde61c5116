"""A short per-number memory of CRM answers, per process, bounded in size.

A caller who rings back a minute later is greeted at once; "unknown" is
remembered too, so a stream of calls from one unknown number does not hit
the CRM each time. Failures (timeouts, errors) are not remembered: the next
call asks again.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict

_MISSING = object()


class TTLCache:
    def __init__(self, max_size: int = 1024):
        self.max_size = max_size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        """(True, value) for a fresh entry, (False, None) otherwise. Values come back as copies."""
        now = time.monotonic()
        with self._lock:
            entry = self._data.get(key, _MISSING)
            if entry is _MISSING:
                return False, None
            expires, value = entry
            if expires <= now:
                del self._data[key]
                return False, None
            self._data.move_to_end(key)
        return True, copy.deepcopy(value)

    def put(self, key, value, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, copy.deepcopy(value))
            self._data.move_to_end(key)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
