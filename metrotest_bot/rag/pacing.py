"""A KB loaded aside gives way to the questions the worker is answering meanwhile.

Under gunicorn's gevent worker the load runs in a native thread (engine.off_hub) and the GIL
changes hands every 0.1 ms (engine.collector_paused): a question on the hub then gets about
half the CPU, and on a big KB several calls' questions queued behind each other for up to
~0.4 s (issue #16, `python -m bench bigkb`). The load's loops call `give_way(i)`: every STEP
items, while a question is being answered, the load pauses — at most WAIT_S a check and
PAUSE_BUDGET_S in all, so a worker that never stops answering (or answers over the network,
with Elasticsearch) still gets its KB switched. Only a load marked `aside` pauses: one made
on the question's own thread would wait for itself.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

STEP = 256  # items a loop handles between checks (~1-25 ms of loading)
WAIT_S = 0.05  # the longest one check pauses the load
PAUSE_BUDGET_S = 10.0  # the longest one load pauses in all (a 75,000-passage load paused ~9 s under 4 busy calls)
POLL_S = 0.001

_asking = 0  # questions being answered in this process (the hub's greenlets, or a threaded server's threads)
_asking_lock = threading.Lock()
_aside: dict[int, float] = {}  # the threads (or greenlets) loading aside → seconds paused so far


def _real_sleep():
    """time.sleep itself: in a native thread of gevent's pool the patched one would start a hub there."""
    try:
        from gevent import monkey
    except ImportError:
        return time.sleep
    return monkey.get_original("time", "sleep")


@contextmanager
def question():
    """Around a question's retrieval: a load aside pauses meanwhile."""
    global _asking
    with _asking_lock:  # `+=` on a global is not atomic between threads: a count left high would slow every load
        _asking += 1
    try:
        yield
    finally:
        with _asking_lock:
            _asking -= 1


@contextmanager
def aside():
    """Around a load running in a thread of its own (engine.collector_paused)."""
    me = threading.get_ident()
    _aside[me] = 0.0
    try:
        yield
    finally:
        _aside.pop(me, None)


def give_way(i: int) -> None:
    """Called by a loading loop at its i-th item."""
    if i % STEP or not _asking:
        return
    me = threading.get_ident()
    paused = _aside.get(me)
    if paused is None or paused >= PAUSE_BUDGET_S:
        return
    sleep = _real_sleep()
    started = time.monotonic()
    deadline = started + min(WAIT_S, PAUSE_BUDGET_S - paused)
    while _asking and time.monotonic() < deadline:
        sleep(POLL_S)
    _aside[me] = paused + time.monotonic() - started
