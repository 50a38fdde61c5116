"""Settings from environment variables (and `.env`), declared once in SETTINGS.

Every setting is one `Setting` line below: its name, type, default and a one-line
doc. `Config` is built from that table, code reads a setting by its name without a
default (`current_app.config["X"]`), and README's settings table is generated from
it (`python config.py --write-readme`; tests/test_config.py checks the two agree).

To add a setting: add one `Setting(...)` line to SETTINGS in the group it belongs
to, read it as `config["NAME"]` where it is used, and run
`.venv/bin/python config.py --write-readme`.

One `Config` reads the environment when it is instantiated, so a test can set
variables and build a fresh config. Secrets are never defaults in the code:
`SECRET_KEY` and `VOICE_TOKEN` are generated once into `DATA_DIR`.
"""
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
SAMPLE_KB = BASE_DIR / "metrotest_bot" / "rag" / "sample_kb" / "metrotest_sample.txt"
README = BASE_DIR / "README.md"
MB = 1024 * 1024

load_dotenv(BASE_DIR / ".env")


def _env(name):
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _bool(value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def choice(*choices: str) -> Callable[[str], str]:
    """A parser accepting one of `choices`, case-insensitively, returned as spelled here."""
    def parse(value: str) -> str:
        for option in choices:
            if value.strip().lower() == option.lower():
                return option
        raise ValueError(f"expected one of {', '.join(choices)}")
    parse.__name__ = "|".join(choices)
    return parse


@dataclass(frozen=True)
class Setting:
    name: str
    type: Callable[[str], Any]  # parses the environment's text: str, int, float, _bool, Path, choice(...)
    default: Any  # the value when unset; a callable(config) for one worked out at start
    doc: str  # the README's "meaning" column
    shown: str | None = None  # the README's "default" column, where the value itself says it badly
    read_by: str = "app"  # "gunicorn": read by gunicorn.conf.py, not put into Config

    def parse(self, raw: str):
        try:
            return self.type(raw.strip() if self.type is not str else raw)
        except ValueError as err:
            raise ValueError(f"{self.name}={raw!r}: {err}") from None

    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        value = self.default
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, str):
            return f"`{value}`"
        return str(value)


def _secret(name: str):
    return lambda config: _secret_file(config.DATA_DIR, name)


# The declaration. Groups follow the README's order; a new setting is one more line.
SETTINGS: tuple[Setting, ...] = (
    # where things live
    Setting("DATA_DIR", Path, BASE_DIR / "instance", "SQLite file, KB files, embedded index", shown="`./instance`"),
    Setting("DATABASE_URL", str, lambda c: f"sqlite:///{c.DATA_DIR / 'metrotest.db'}",
            "SQLAlchemy URL (`postgresql://…` for PostgreSQL)", shown="SQLite in `DATA_DIR`"),
    Setting("DB_CONNECT_TIMEOUT", int, 5, "PostgreSQL: seconds to wait for a connection before a database call fails"),
    Setting("SECRET_KEY", str, _secret("secret_key"), "sessions and CSRF", shown="generated once into `DATA_DIR`"),
    Setting("VOICE_TOKEN", str, _secret("voice_token"), "shared secret of the call WebSocket",
            shown="generated once into `DATA_DIR`, printed at start"),
    Setting("SHARED_STATE_TTL", float, 2.0,
            "seconds a worker trusts its cached copy of the bot's settings and of the KB version in force"),
    # the knowledge base
    Setting("KB_PATH", Path, SAMPLE_KB, "KB file indexed on first start",
            shown="`metrotest_bot/rag/sample_kb/metrotest_sample.txt`"),
    Setting("KB_MAX_UPLOAD_BYTES", int, 20 * MB, "largest KB file (any format, uploaded or `KB_PATH`)", shown="20 MiB"),
    Setting("KB_MAX_TEXT_CHARS", int, 20_000_000, "most text a KB file may hold once decoded or extracted",
            shown="20 000 000"),
    Setting("KB_PDF_MAX_PAGES", int, 2000, "most pages of a PDF"),
    Setting("KB_PDF_MAX_INFLATED_BYTES", int, 32 * MB,
            "a PDF's page content once decompressed (summed over pages, as text extraction reads it)", shown="32 MiB"),
    Setting("KB_INDEX_TIMEOUT", float, 300.0, "seconds to read and index one KB file"),
    Setting("KB_JOB_STALE_SECONDS", float, 60.0, "a KB indexing job silent this long is taken for dead (its worker restarted)"),
    Setting("KB_HOLD_UPLOADS", _bool, True, "an uploaded KB version is a candidate until an admin publishes it after its "
            "replay (false: it goes live once indexed, unless held for shrinking)"),
    Setting("KB_CONFIRM_SHRINK_RATIO", float, 0.5, "an upload with fewer passages than this share of the KB in force is "
            "never put in force without an explicit confirmation (0: no check)"),
    Setting("REPLAY_QUESTIONS", int, 200,
            "how many of the callers' latest distinct questions a replay asks (besides the saved test questions)"),
    Setting("REPLAY_LLM_CONCURRENCY", int, 4,
            "with an LLM configured, replays ask the model; at most this many answers at once"),
    # answers
    Setting("OPENAI_API_KEY", str, None, "LLM key", shown="none: offline answers"),
    Setting("OPENAI_BASE_URL", str, None, "any OpenAI-compatible endpoint", shown="OpenAI's"),
    Setting("LLM_MODEL", str, "gpt-4o-mini", "model name"),
    Setting("FIRST_SPEECH_DEADLINE", float, 3.0,
            "seconds from a final prompt to the first spoken piece, whatever the model does"),
    Setting("LLM_STALL_TIMEOUT", float, 4.0, "silence after a spoken piece before the answer is closed with a phrase"),
    Setting("LLM_TOTAL_TIMEOUT", float, 20.0, "seconds of a whole answer before it is closed with a phrase"),
    Setting("LLM_FIRST_TOKEN_TIMEOUT", float, 4.0, "the HTTP read timeout of the model's stream"),
    Setting("LLM_MAX_TOKENS", int, 300, "longest answer the model may write, in tokens"),
    Setting("LLM_READ_PACE_MS", float, 100.0, "once an answer's first piece is spoken, its stream is read at most this "
            "often (what arrived meanwhile in one read: less CPU per answer; later pieces are queued for speech "
            "anyway); 0: every chunk as it comes"),
    # search
    Setting("ELASTICSEARCH_URL", str, None, "Elasticsearch for KB and transcripts", shown="none: embedded search"),
    Setting("ELASTICSEARCH_PREFIX", str, "metrotest", "prefix of the Elasticsearch index names"),
    Setting("ELASTICSEARCH_TIMEOUT", float, 5.0,
            "seconds per Elasticsearch request; the panel falls back to SQL search rather than wait longer"),
    Setting("SEARCH_OUTBOX_POLL", float, 10.0, "seconds between idle looks for transcripts to index"),
    Setting("SEARCH_OUTBOX_RETRY_MAX", float, 30.0, "longest pause between retries while Elasticsearch is down"),
    # calls
    Setting("OPERATOR_PHONE", str, None, "where a caller is transferred"),
    Setting("ABANDONED_SWEEP_S", float, 300.0, "every worker closes calls a crashed worker left in progress (silent past "
            "the idle timeout + 5 min) as lost, with what was said; 0: never"),
    Setting("CALLLOG_FLUSH_MS", float, 250.0, "the call log's writer commits the turns of all the worker's calls "
            "together at most this often (a kill -9 loses at most that much)"),
    Setting("CALLLOG_RETRY_MAX_S", float, 5.0, "while the database is away (turns wait in `DATA_DIR/calllog-spool`), "
            "the longest pause between tries to replay them"),
    Setting("CALLLOG_SPOOL_MAX_MB", float, 512.0, "the most one worker's call-log spool file may hold while the database is "
            "away; records beyond it are lost, with an error in the log"),
    Setting("VOICE_IDLE_TIMEOUT", float, 120.0, "seconds a call socket may stay silent before it is closed and the call logged as lost"),
    Setting("VOICE_PING_INTERVAL", float, 20.0, "seconds between the server's WebSocket pings (0: none)"),
    Setting("VOICE_MAX_FRAME_BYTES", int, 64 * 1024, "largest call-socket frame accepted (else an `error` frame)"),
    Setting("VOICE_MAX_JSON_DEPTH", int, 32, "most deeply nested call-socket frame accepted (else an `error` frame)"),
    Setting("VOICE_MAX_FRAMES_PER_SECOND", float, 50.0, "per call socket: frames a second (0: no limit)"),
    Setting("VOICE_MAX_PROMPTS_PER_SECOND", float, 3.0, "per call socket: final prompts a second (0: no limit)"),
    Setting("VOICE_RATE_LIMIT_CLOSE_AFTER", int, 200,
            "frames refused within 10 s before the socket is closed (1008) and the call logged as lost (0: never)"),
    Setting("VOICE_SEND_QUEUE_BYTES", int, 256 * 1024, "a client that lets this much pile up unsent is cut off"),
    Setting("VOICE_SEND_TIMEOUT", float, 10.0, "a client that takes nothing for this many seconds is cut off"),
    # the CRM
    Setting("CRM_KIND", str, None, "caller context from the CRM: `bitrix24`, `amocrm` or `webhook` (below)"),
    Setting("CRM_URL", str, None, "the CRM's address (below)"),
    Setting("CRM_TOKEN", str, None, "the CRM's token (below)"),
    Setting("CRM_TIMEOUT_MS", int, 1500, "the whole CRM lookup's budget in milliseconds; slower means a call without context"),
    Setting("CRM_CACHE_TTL", float, 300.0, "seconds a number's CRM answer is reused (0: never)"),
    # the post-call report
    Setting("CALL_WEBHOOK_URL", str, None, "signed JSON report of every finished call (below)"),
    Setting("CALL_WEBHOOK_SECRET", str, None, "the HMAC key signing those reports"),
    Setting("CALL_WEBHOOK_TIMEOUT", float, 10.0, "seconds per delivery attempt"),
    Setting("CALL_WEBHOOK_RETRY_BASE", float, 5.0, "first retry delay in seconds: base, 2·base, 4·base …"),
    Setting("CALL_WEBHOOK_RETRY_MAX", float, 3600.0, "… up to this many seconds"),
    Setting("CALL_WEBHOOK_MAX_ATTEMPTS", int, 20, "attempts before a report is given up (kept in `call_webhooks` as `failed`)"),
    Setting("CALL_WEBHOOK_POLL", float, 30.0, "seconds between looks for reports other workers left"),
    Setting("CALL_SUMMARY_LLM", _bool, True, "with an LLM configured, the post-call summary is worded by the model "
            "after the call (false: always the extractive one)"),
    Setting("CALL_SUMMARY_TIMEOUT", float, 10.0,
            "seconds the model has for a summary; on an error or past it the extractive summary stays"),
    Setting("CRM_CALL_NOTES", _bool, True, "with `CRM_KIND` bitrix24 or amocrm, a call whose caller the CRM knew "
            "leaves a note with its summary on the caller's card (below)"),
    # the admin panel
    Setting("COMPANY_TZ", str, "Asia/Yekaterinburg", "the zone the admin panel shows times in"),
    Setting("ADMIN_PAGE_SIZE", int, 50, "calls per page of the panel's call list"),
    Setting("CSP_MEDIA_SRC", str, "'self' https:", "where the panel's player may load call recordings from "
            "(Content-Security-Policy `media-src`)"),
    Setting("SESSION_COOKIE_SECURE", _bool, False, "`true` on HTTPS: the panel's cookie is never sent in clear"),
    Setting("SESSION_COOKIE_SAMESITE", choice("Lax", "Strict", "None"), "Lax",
            "`Lax`, `Strict` or `None` (`None` needs Secure)"),
    Setting("ADMIN_SESSION_MINUTES", int, 8 * 60, "a panel session ends after this long without a request"),
    Setting("ADMIN_SESSION_MAX_HOURS", float, 12.0, "and this long after sign-in, however busy"),
    Setting("LOGIN_FREE_FAILURES", int, 3, "failed sign-ins per (user name, address) before waits begin"),
    Setting("LOGIN_FREE_FAILURES_PER_IP", int, 20, "failed sign-ins per address before waits begin"),
    Setting("LOGIN_BACKOFF_SECONDS", float, 1.0, "the first wait, doubled after each further failure …"),
    Setting("LOGIN_BACKOFF_MAX_SECONDS", float, 900.0, "… up to this many seconds"),
    Setting("LOGIN_WINDOW_HOURS", float, 24.0, "failures older than this are forgotten"),
    # gunicorn (gunicorn.conf.py reads these itself: it must not import the app)
    Setting("GUNICORN_WORKERS", int, lambda c: os.cpu_count() or 1, "gevent workers, each holding hundreds of calls",
            shown="the CPU count", read_by="gunicorn"),
    Setting("GUNICORN_BIND", str, "0.0.0.0:8000", "address and port gunicorn listens on", read_by="gunicorn"),
    Setting("GUNICORN_WORKER_CONNECTIONS", int, 1000, "connections (calls) one worker holds at most", read_by="gunicorn"),
    Setting("GUNICORN_TIMEOUT", int, 30, "seconds a worker's hub may block before the master restarts it",
            read_by="gunicorn"),
    Setting("GUNICORN_GRACEFUL_TIMEOUT", int, 30, "seconds for calls in progress to end on a restart; those still "
            "open are then closed and logged as lost", read_by="gunicorn"),
    Setting("GUNICORN_KEEPALIVE", int, 5, "idle HTTP keep-alive in seconds; set it above your load balancer's idle "
            "timeout", read_by="gunicorn"),
    Setting("GUNICORN_CONTROL_SOCKET", str, None, "path of gunicorn's control socket (off when unset)",
            read_by="gunicorn"),
    Setting("FORWARDED_ALLOW_IPS", str, "127.0.0.1,::1", "proxies whose X-Forwarded-* headers are trusted",
            read_by="gunicorn"),
    Setting("LOG_LEVEL", str, "info", "gunicorn's and the app's log level", read_by="gunicorn"),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
# Plain defaults (not worked out at start) for code handed a partial mapping, such as a test's dict.
DEFAULTS = {s.name: s.default for s in SETTINGS if not callable(s.default)}


def _secret_file(data_dir: Path, name: str) -> str:
    """Read a secret from DATA_DIR, creating it on first use (mode 0600).

    Written to a temporary file and linked into place, so concurrent first
    starts (several workers) all end up with the same complete value.
    """
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    tmp = data_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32))
    try:
        os.link(tmp, path)  # atomic, and fails if another process won the race
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def normalize_db_url(url: str) -> str:
    """Plain postgres URLs get the psycopg (v3) driver, which is what we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def read_setting(setting: Setting, config=None):
    """The setting's value from the environment, else its default."""
    raw = _env(setting.name)
    if raw is not None:
        return setting.parse(raw)
    return setting.default(config) if callable(setting.default) else setting.default


class Config:
    """Every declared setting as an attribute, then what Flask and its extensions derive from them.

    Keyword overrides (tests) take the place of the environment for declared names and are set
    as they are for any other name.
    """

    TESTING = False

    def __init__(self, **overrides):
        overrides_given = set(overrides)
        for setting in SETTINGS:
            if setting.read_by != "app":
                continue
            value = overrides.pop(setting.name, None)
            if value is None and setting.name not in overrides_given:
                value = read_setting(setting, self)
            if setting.name == "DATA_DIR":  # every default below it may live there
                value = value or read_setting(setting, self)
                value = Path(value).resolve()
                value.mkdir(parents=True, exist_ok=True)
            setattr(self, setting.name, value)

        self.SQLALCHEMY_DATABASE_URI = normalize_db_url(self.DATABASE_URL)
        # pool_pre_ping survives a database restart without failing the first request
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
        # A request may carry a KB file and its form fields.
        self.MAX_CONTENT_LENGTH = self.KB_MAX_UPLOAD_BYTES + MB

        self.SESSION_COOKIE_HTTPONLY = True
        if self.SESSION_COOKIE_SAMESITE == "None" and not self.SESSION_COOKIE_SECURE:
            # Browsers drop such a cookie: nobody could sign in. Say so at start instead.
            raise ValueError("SESSION_COOKIE_SAMESITE=None needs SESSION_COOKIE_SECURE=true")
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        # Admin sessions also end on the server (admin/sessions.py); the cookie lasts as long.
        self.PERMANENT_SESSION_LIFETIME = self.ADMIN_SESSION_MINUTES * 60
        self.WTF_CSRF_TIME_LIMIT = None

        for key, value in overrides.items():
            setattr(self, key, value)


class TestConfig(Config):
    """Isolated settings for tests: its own DATA_DIR, no API key unless given."""

    TESTING = True

    def __init__(self, **overrides):
        overrides.setdefault("OPENAI_API_KEY", None)
        # Elasticsearch only where a test asks for it: ELASTICSEARCH_URL in the shell is for the contract tests.
        overrides.setdefault("ELASTICSEARCH_URL", None)
        overrides.setdefault("SECRET_KEY", "test-secret")
        overrides.setdefault("VOICE_TOKEN", "test-token")
        # The older KB tests replace the sample KB by 3-passage files and expect them in force at once;
        # the tests of holding (tests/test_admin_replay.py) set both settings themselves.
        overrides.setdefault("KB_CONFIRM_SHRINK_RATIO", 0.0)
        overrides.setdefault("KB_HOLD_UPLOADS", False)
        # Tests make calls "in progress" that started long ago; tests/test_voice_abandoned.py sweeps itself.
        overrides.setdefault("ABANDONED_SWEEP_S", 0)
        db_url = overrides.pop("SQLALCHEMY_DATABASE_URI", None)
        super().__init__(**overrides)
        # TEST_DATABASE_URL runs the suite on PostgreSQL; SQLite in DATA_DIR otherwise.
        self.SQLALCHEMY_DATABASE_URI = normalize_db_url(
            db_url or _env("TEST_DATABASE_URL") or f"sqlite:///{self.DATA_DIR / 'test.db'}")


# -- README's settings table ------------------------------------------------------------------

TABLE_START = "<!-- settings table: generated from config.SETTINGS by `python config.py --write-readme` -->"
TABLE_END = "<!-- end of settings table -->"


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.shown_default()} | {s.doc} |" for s in SETTINGS]
    return "\n".join(rows)


def readme_with_table(text: str) -> str:
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return text[:start] + "\n" + settings_table() + "\n" + text[end:]


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-readme"]:
        README.write_text(readme_with_table(README.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(settings_table())
