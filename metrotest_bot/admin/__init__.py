"""The login-protected admin panel at /logs-ui/."""
from flask import Blueprint

bp = Blueprint("admin", __name__, template_folder="../templates")

from . import views  # noqa: E402,F401
