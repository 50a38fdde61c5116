"""Metrotest voice assistant: the app factory."""
import os

# Haystack phones home unless told not to; this machine and many offices have no internet.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from flask import Flask  # noqa: E402

from . import database, logredact, security_headers  # noqa: E402
from .extensions import csrf, db, login_manager, migrate, sock  # noqa: E402


def create_app(config=None) -> Flask:
    """Build the app. `config` is a config.Config instance (Config() when None)."""
    from config import Config

    logredact.install()  # the call token never reaches a log line, under any server or CLI
    app = Flask(__name__)
    app.config.from_object(config or Config())
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # A partitioned database must fail a call's log write fast, not hang it.
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options["connect_args"] = {"connect_timeout": app.config["DB_CONNECT_TIMEOUT"],
                                   **options.get("connect_args", {})}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options

    db.init_app(app)
    database.init_app(app)  # SQLite: a commit must not stall every greenlet of the worker
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))
    login_manager.init_app(app)
    sock.init_app(app)
    csrf.init_app(app)
    security_headers.init_app(app)

    from . import models, search  # noqa: F401  (models: register tables)

    search.init_app(app)  # transcripts are indexed as calls are written, with or without the panel

    from .health import bp as health_bp

    app.register_blueprint(health_bp)

    from .voice import abandoned, logwriter
    from .voice import bp as voice_bp

    app.register_blueprint(voice_bp)
    logwriter.init_app(app)  # the call log's writer; it replays dead workers' spools first
    abandoned.init_app(app)

    from .admin import bp as admin_bp

    app.register_blueprint(admin_bp, url_prefix="/logs-ui")

    from . import cli, reports

    cli.init_app(app)
    reports.init_app(app)  # the end-of-call webhook's sender, when CALL_WEBHOOK_URL is set
    return app
