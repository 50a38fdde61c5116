"""Run a CRM lookup within its time budget, whatever the CRM does.

Under gunicorn's gevent worker (sockets monkey-patched) a gevent.Timeout
cancels the lookup where it stands. Elsewhere (the Flask dev server, a
script) the lookup runs in a daemon thread that is abandoned at the deadline;
its sockets time out on their own by the same deadline.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class BudgetExceeded(Exception):
    pass


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return False
    return monkey.is_module_patched("socket")


def run_within(seconds: float, fn: Callable[[], T]) -> T:
    if seconds <= 0:
        raise BudgetExceeded("no time budget")
    if _gevent_patched():
        import gevent

        timer = gevent.Timeout(seconds)
        timer.start()
        try:
            return fn()
        except gevent.Timeout as t:
            if t is not timer:
                raise
            raise BudgetExceeded(f"CRM lookup over {seconds:.2f} s") from None
        finally:
            timer.close()

    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the caller below
            box["error"] = err

    worker = threading.Thread(target=target, name="crm-lookup", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise BudgetExceeded(f"CRM lookup over {seconds:.2f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
