"""The answer engine: KB ingestion, document stores, retrieval, answer generation.

    from metrotest_bot.rag import get_engine
    engine = get_engine()                       # needs an app context; built once per app
    stream = engine.answer("во сколько вы открываетесь", get_bot_settings())
    for piece in stream: ...                    # speakable pieces as they are ready
    stream.close()                              # barge-in

See rag/types.py for the contract, rag/versions.py for KB versions.
"""
from __future__ import annotations

import threading

from flask import current_app

from .errors import KBError
from .types import AnswerStream, CallerContext, Passage, Timings

EXTENSION_KEY = "metrotest_rag_engine"
_lock = threading.Lock()


def get_engine():
    """The app's engine (one per app object, created on first use, thread/greenlet-safe)."""
    app = current_app._get_current_object()
    engine = app.extensions.get(EXTENSION_KEY)
    if engine is None:
        with _lock:
            engine = app.extensions.get(EXTENSION_KEY)
            if engine is None:
                from .engine import Engine

                engine = Engine(app)
                app.extensions[EXTENSION_KEY] = engine
    return engine


__all__ = ["get_engine", "KBError", "AnswerStream", "CallerContext", "Passage", "Timings"]
