"""A cross-process lock on a file, safe to wait on under gevent."""
import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, wait_s: float = 0.0):
    """Yield True once the lock on `path` is held, False when `wait_s` passed first.

    Polls with sleeps rather than a blocking flock, so a waiting greenlet never
    blocks its worker. Closing the descriptor releases the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
            except BlockingIOError:
                got = False
            if got or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        yield got
    finally:
        os.close(fd)
