"""A per-app background thread that sleeps until woken or polled: the search outbox drainer and the
call-webhook sender are both one.

Started on demand (and again in a forked worker: a thread does not survive fork), stopped on request.
Subclasses name the thread and implement _run(), which loops until `_stopped` is set, waiting on
`_wake` between rounds.
"""
from __future__ import annotations

import os
import threading


class BackgroundWorker:
    thread_name = "background"
    extension_key = ""  # where for_app() keeps the app's one instance (app.extensions)

    @classmethod
    def for_app(cls, app):
        """The app's one instance, made from the app on first use."""
        found = app.extensions.get(cls.extension_key)
        if found is None:
            found = app.extensions[cls.extension_key] = cls(app)
        return found

    def __init__(self):
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def _alive(self) -> bool:
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def ensure_running(self) -> None:
        if self._alive():
            return
        with self._start_lock:
            if self._alive():
                return
            self._pid = os.getpid()
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self.ensure_running()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        raise NotImplementedError
