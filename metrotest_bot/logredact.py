"""Secrets out of the logs: every `token=…` in a log line becomes `token=***`.

The call socket's URL carries VOICE_TOKEN (`/voice/ws?token=…`), and some
messages quote a URL whole: gunicorn's error for a malformed request line,
a library's exception. The redaction is a log record factory, so it applies
to every logger and handler (gunicorn's own included) and to the text of a
logged exception, whatever the logging configuration.

Standard library only: gunicorn.conf.py loads this file by path in the
master, where importing the package would import the app before gevent's
monkey-patching (see gunicorn.conf.py).
"""
from __future__ import annotations

import logging
import re

# token=, access_token=, Token%3D… up to the end of the value in a URL or a quoted string.
TOKEN_VALUE = re.compile(r"(token(?:=|%3d))[^&\s'\"<>;,)]+", re.IGNORECASE)
MASK = "***"
_MARK = "_metrotest_redacts_tokens"


def redact(text: str) -> str:
    return TOKEN_VALUE.sub(lambda m: m.group(1) + MASK, text)


def redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging reports it itself, later
        return
    if "token" in message.lower():
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        if "token" in text.lower():
            record.exc_text = redact(text)  # the handler's formatter uses exc_text as it is
    if record.stack_info and "token" in record.stack_info.lower():
        record.stack_info = redact(record.stack_info)


def install() -> None:
    """Redact every log record from now on (idempotent, also across copies of this module)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)
