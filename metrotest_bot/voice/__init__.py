"""The call WebSocket at /voice/ws (shared/PROTOCOL.md)."""
from flask import Blueprint

bp = Blueprint("voice", __name__)

SUBPROTOCOLS = ["chat"]  # VoxEngine.createWebSocket offers "chat"; the server echoes it
# simple-websocket closes the socket (1009) on a message over max_message_size. Frames
# over VOICE_MAX_FRAME_BYTES must get an `error` frame and keep the call, so that check
# is ours (voice.frames); this far larger cap only bounds the memory one frame may take.
HARD_FRAME_CAP_BYTES = 4 * 1024 * 1024


@bp.record_once
def _socket_options(state):
    cfg = state.app.config
    cfg.setdefault("SOCK_SERVER_OPTIONS", {
        "subprotocols": SUBPROTOCOLS,
        "ping_interval": cfg.get("VOICE_PING_INTERVAL") or None,
        "max_message_size": max(HARD_FRAME_CAP_BYTES, 4 * cfg["VOICE_MAX_FRAME_BYTES"]),
    })


from . import routes  # noqa: E402,F401
