"""The call WebSocket at /voice/ws (shared/PROTOCOL.md)."""
from flask import Blueprint

bp = Blueprint("voice", __name__)

from . import routes  # noqa: E402,F401
