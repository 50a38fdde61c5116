"""GET /healthz: is the service up, what does it answer from.

`transcript_search` tells how the admin panel's call search fares: its
backend, whether it is degraded (Elasticsearch configured but not answering,
so searches come from the SQL index), and the changes still waiting for
Elasticsearch (the outbox) with the drainer's last error. A degraded search
does not fail the probe: calls are answered, the panel works.
`call_webhook` counts end-of-call reports waiting and given up (null when
CALL_WEBHOOK_URL is not set); a backlog does not fail the probe either.
"""
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    from .rag import get_engine
    from .reports.webhook import status as webhook_status
    from .search import get_index

    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        webhooks = webhook_status(current_app)
    except Exception as exc:  # report, don't crash: the probe must always answer
        db.session.rollback()
        checks["database"] = f"error: {exc.__class__.__name__}"
        webhooks = None
    engine = get_engine()
    status = "ok" if checks["database"] == "ok" and engine.passage_count() > 0 else "degraded"
    cfg = current_app.config
    return jsonify(
        status=status,
        kb_passages=engine.passage_count(),
        search_backend=engine.backend_name(),
        llm_mode=cfg["LLM_MODEL"] if cfg.get("OPENAI_API_KEY") else "offline",
        transcript_search=get_index().status(),
        call_webhook=webhooks,
        checks=checks,
    ), (200 if status == "ok" else 503)
