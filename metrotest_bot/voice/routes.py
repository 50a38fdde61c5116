"""The call WebSocket at /voice/ws (shared/PROTOCOL.md)."""
import hmac
import logging

from flask import current_app, request

from ..extensions import sock
from . import bp
from .session import CallSession, close_socket

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008


def token_ok(given: str | None) -> bool:
    expected = current_app.config.get("VOICE_TOKEN") or ""
    # Constant time, and on bytes: compare_digest refuses non-ASCII str.
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@sock.route("/voice/ws", bp=bp)
def call_socket(ws):
    if not token_ok(request.args.get("token")):
        log.warning("call socket from %s refused: missing or wrong token", request.remote_addr)
        close_socket(ws, POLICY_VIOLATION, "invalid token")
        return
    CallSession(ws, current_app._get_current_object()).run()
