"""The login-protected admin panel at /logs-ui/.

One module per page or concern: auth (sign-in), sessions (server-side, so they
can end), throttle (sign-in backoff), passwords (the rule), account (changing
one's password), calls (list and call page), export (CSV), clear (clearing the
log), ranges (bounds on URL input). A new page is a new module imported
below plus one line in templates/admin/_nav.html; every endpoint of this
blueprint requires sign-in unless listed in PUBLIC_ENDPOINTS.
"""
from flask import Blueprint, current_app, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from ..extensions import login_manager

bp = Blueprint("admin", __name__, template_folder="../templates")

PUBLIC_ENDPOINTS = {"admin.login"}


@bp.before_request
def require_login():
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        return login_manager.unauthorized()


@bp.after_request
def never_cache(response):
    # Call data, transcripts and exports must not stay in a browser's or a proxy's cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("Pragma", "no-cache")
    return response


@bp.app_context_processor
def admin_helpers():
    return {"has_endpoint": lambda name: name in current_app.view_functions}


@bp.errorhandler(CSRFError)
def csrf_error(exc):
    return render_template("admin/error.html", title="Форма устарела",
                           message="Страница с формой устарела или открыта из другого места. "
                                   "Обновите страницу и повторите действие."), 400


@bp.errorhandler(404)
def not_found(exc):
    return render_template("admin/error.html", title="Не найдено",
                           message="Такой страницы или звонка нет. Возможно, журнал очищен."), 404


@bp.errorhandler(400)
def bad_request(exc):
    return render_template("admin/error.html", title="Неверный запрос",
                           message=getattr(exc, "description", "") or "Проверьте параметры."), 400


from . import account, auth, calls, clear, export, labels  # noqa: E402,F401
from . import analytics, kb, settings_views, try_it  # noqa: E402,F401  (part 2: KB, bot's words, try, analytics)
from . import replay, review  # noqa: E402,F401  (issue 15: answer review, replay before publishing)
from . import prompt_replay  # noqa: E402,F401  (issue 15: a change of the prompt replayed before publishing)
