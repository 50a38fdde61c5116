"""Settings from environment variables (and `.env`).

One `Config` class reads the environment when it is instantiated, so a test
can set variables and build a fresh config. Secrets are never defaults in the
code: `SECRET_KEY` and `VOICE_TOKEN` are generated once into `DATA_DIR`.
"""
import os
import secrets
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
SAMPLE_KB = BASE_DIR / "metrotest_bot" / "rag" / "sample_kb" / "metrotest_sample.txt"

load_dotenv(BASE_DIR / ".env")


def _env(name, default=None):
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name, default):
    return int(_env(name, default))


def _env_float(name, default):
    return float(_env(name, default))


def _env_bool(name, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: expected true or false")


def _env_choice(name, default: str, choices) -> str:
    value = _env(name, default)
    for choice in choices:
        if value.strip().lower() == choice.lower():
            return choice
    raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")


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


class Config:
    TESTING = False

    def __init__(self, **overrides):
        self.DATA_DIR = Path(overrides.pop("DATA_DIR", None) or _env("DATA_DIR", BASE_DIR / "instance")).resolve()
        self.DATA_DIR.mkdir(parents=True, exist_ok=True)

        self.SQLALCHEMY_DATABASE_URI = normalize_db_url(
            _env("DATABASE_URL", f"sqlite:///{self.DATA_DIR / 'metrotest.db'}"))
        # pool_pre_ping survives a database restart without failing the first request
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False

        self.SECRET_KEY = _env("SECRET_KEY") or _secret_file(self.DATA_DIR, "secret_key")
        self.VOICE_TOKEN = _env("VOICE_TOKEN") or _secret_file(self.DATA_DIR, "voice_token")

        self.KB_PATH = Path(_env("KB_PATH", SAMPLE_KB))
        self.KB_MAX_UPLOAD_BYTES = _env_int("KB_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
        self.MAX_CONTENT_LENGTH = self.KB_MAX_UPLOAD_BYTES + 1024 * 1024
        # Bounds on reading a KB file (rag/upload_limits.py): a small PDF can inflate to gigabytes.
        self.KB_MAX_TEXT_CHARS = _env_int("KB_MAX_TEXT_CHARS", 20_000_000)
        self.KB_PDF_MAX_PAGES = _env_int("KB_PDF_MAX_PAGES", 2000)
        self.KB_PDF_MAX_INFLATED_BYTES = _env_int("KB_PDF_MAX_INFLATED_BYTES", 32 * 1024 * 1024)
        self.KB_INDEX_TIMEOUT = _env_float("KB_INDEX_TIMEOUT", 300.0)
        # A KB indexing job silent this long is taken for dead (its worker restarted).
        self.KB_JOB_STALE_SECONDS = _env_float("KB_JOB_STALE_SECONDS", 60.0)
        # Replay before publishing (admin/replay.py): an uploaded KB with fewer passages than this
        # share of the KB in force is held until an admin confirms it (0: never held); a replay
        # asks the last REPLAY_QUESTIONS distinct callers' questions plus the saved test questions.
        # KB_HOLD_UPLOADS: every upload is first a candidate, published by an admin after its
        # replay (false: an upload that is not held for shrinking goes live when indexed).
        self.KB_HOLD_UPLOADS = _env_bool("KB_HOLD_UPLOADS", True)
        self.KB_CONFIRM_SHRINK_RATIO = _env_float("KB_CONFIRM_SHRINK_RATIO", 0.5)
        self.REPLAY_QUESTIONS = _env_int("REPLAY_QUESTIONS", 200)

        self.OPENAI_API_KEY = _env("OPENAI_API_KEY")
        self.OPENAI_BASE_URL = _env("OPENAI_BASE_URL")
        self.LLM_MODEL = _env("LLM_MODEL", "gpt-4o-mini")
        # A phone line cannot wait: first token within a few seconds, no retry chains.
        self.LLM_FIRST_TOKEN_TIMEOUT = _env_float("LLM_FIRST_TOKEN_TIMEOUT", 4.0)
        self.LLM_TOTAL_TIMEOUT = _env_float("LLM_TOTAL_TIMEOUT", 20.0)
        # From a final prompt to the first spoken piece, whatever the model does (keep-alives, a slow trickle).
        # Where the panel's player may load call recordings from (CSP media-src): the telephony's storage.
        self.CSP_MEDIA_SRC = _env("CSP_MEDIA_SRC", "'self' https:")
        # Seconds between sweeps closing calls a crashed worker left in progress (0: never).
        self.ABANDONED_SWEEP_S = _env_float("ABANDONED_SWEEP_S", 300.0)
        # The call log's writer commits the records of all calls at most this often (a kill -9 loses at
        # most that much); while the database is away they wait in DATA_DIR/calllog-spool, retried with a
        # backoff up to CALLLOG_RETRY_MAX_S seconds.
        self.CALLLOG_FLUSH_MS = _env_float("CALLLOG_FLUSH_MS", 250.0)
        self.CALLLOG_RETRY_MAX_S = _env_float("CALLLOG_RETRY_MAX_S", 5.0)
        self.FIRST_SPEECH_DEADLINE = _env_float("FIRST_SPEECH_DEADLINE", 3.0)
        # Longest silence between two pieces of a streaming answer before it is closed with a phrase.
        self.LLM_STALL_TIMEOUT = _env_float("LLM_STALL_TIMEOUT", 4.0)
        self.LLM_MAX_TOKENS = _env_int("LLM_MAX_TOKENS", 300)

        self.ELASTICSEARCH_URL = _env("ELASTICSEARCH_URL")
        self.ELASTICSEARCH_PREFIX = _env("ELASTICSEARCH_PREFIX", "metrotest")
        # Per request: the admin panel falls back to SQL search rather than wait longer.
        self.ELASTICSEARCH_TIMEOUT = _env_float("ELASTICSEARCH_TIMEOUT", 5.0)
        # Transcript outbox: idle poll, and the longest pause between retries while Elasticsearch is down.
        self.SEARCH_OUTBOX_POLL = _env_float("SEARCH_OUTBOX_POLL", 10.0)
        self.SEARCH_OUTBOX_RETRY_MAX = _env_float("SEARCH_OUTBOX_RETRY_MAX", 30.0)

        self.OPERATOR_PHONE = _env("OPERATOR_PHONE")

        # End-of-call report: a signed JSON POST per finished call, from a durable outbox (reports/webhook.py).
        self.CALL_WEBHOOK_URL = _env("CALL_WEBHOOK_URL")
        self.CALL_WEBHOOK_SECRET = _env("CALL_WEBHOOK_SECRET")
        self.CALL_WEBHOOK_TIMEOUT = _env_float("CALL_WEBHOOK_TIMEOUT", 10.0)  # seconds per delivery attempt
        # Retries back off exponentially from RETRY_BASE up to RETRY_MAX seconds; given up after MAX_ATTEMPTS.
        self.CALL_WEBHOOK_RETRY_BASE = _env_float("CALL_WEBHOOK_RETRY_BASE", 5.0)
        self.CALL_WEBHOOK_RETRY_MAX = _env_float("CALL_WEBHOOK_RETRY_MAX", 3600.0)
        self.CALL_WEBHOOK_MAX_ATTEMPTS = _env_int("CALL_WEBHOOK_MAX_ATTEMPTS", 20)
        self.CALL_WEBHOOK_POLL = _env_float("CALL_WEBHOOK_POLL", 30.0)  # idle look for work other workers left
        self.COMPANY_TZ = _env("COMPANY_TZ", "Asia/Yekaterinburg")

        self.VOICE_IDLE_TIMEOUT = _env_float("VOICE_IDLE_TIMEOUT", 120.0)
        self.VOICE_PING_INTERVAL = _env_float("VOICE_PING_INTERVAL", 20.0)
        self.VOICE_MAX_FRAME_BYTES = _env_int("VOICE_MAX_FRAME_BYTES", 64 * 1024)
        self.VOICE_MAX_JSON_DEPTH = _env_int("VOICE_MAX_JSON_DEPTH", 32)
        # Per socket: a scenario sends a few frames a second and a final prompt every second or two.
        self.VOICE_MAX_FRAMES_PER_SECOND = _env_float("VOICE_MAX_FRAMES_PER_SECOND", 50.0)
        self.VOICE_MAX_PROMPTS_PER_SECOND = _env_float("VOICE_MAX_PROMPTS_PER_SECOND", 3.0)
        # Frames refused within 10 s before the socket is closed (1008) and the call finalized.
        self.VOICE_RATE_LIMIT_CLOSE_AFTER = _env_int("VOICE_RATE_LIMIT_CLOSE_AFTER", 200)
        # Slow consumer: bytes waiting beyond the kernel's buffers, and seconds without a byte taken.
        self.VOICE_SEND_QUEUE_BYTES = _env_int("VOICE_SEND_QUEUE_BYTES", 256 * 1024)
        self.VOICE_SEND_TIMEOUT = _env_float("VOICE_SEND_TIMEOUT", 10.0)

        self.CRM_KIND = _env("CRM_KIND")
        self.CRM_URL = _env("CRM_URL")
        self.CRM_TOKEN = _env("CRM_TOKEN")
        self.CRM_TIMEOUT_MS = _env_int("CRM_TIMEOUT_MS", 1500)
        self.CRM_CACHE_TTL = _env_float("CRM_CACHE_TTL", 300.0)  # seconds a number's CRM answer is reused

        # How long a worker trusts its cached copy of settings and the KB version.
        self.SHARED_STATE_TTL = _env_float("SHARED_STATE_TTL", 2.0)

        self.SESSION_COOKIE_HTTPONLY = True
        # On HTTPS (directly or behind a proxy) turn Secure on: the cookie never travels in clear.
        self.SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)
        self.SESSION_COOKIE_SAMESITE = _env_choice("SESSION_COOKIE_SAMESITE", "Lax", ("Lax", "Strict", "None"))
        if self.SESSION_COOKIE_SAMESITE == "None" and not self.SESSION_COOKIE_SECURE:
            # Browsers drop such a cookie: nobody could sign in. Say so at start instead.
            raise ValueError("SESSION_COOKIE_SAMESITE=None needs SESSION_COOKIE_SECURE=true")
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        # Admin sessions end on the server (admin/sessions.py): after this long without a
        # request (idle), and this long after sign-in however busy (absolute).
        self.ADMIN_SESSION_MINUTES = _env_int("ADMIN_SESSION_MINUTES", 8 * 60)
        self.ADMIN_SESSION_MAX_HOURS = _env_float("ADMIN_SESSION_MAX_HOURS", 12.0)
        self.PERMANENT_SESSION_LIFETIME = self.ADMIN_SESSION_MINUTES * 60
        self.WTF_CSRF_TIME_LIMIT = None

        # Sign-in throttling per (user name, address) and per address (admin/throttle.py):
        # after the free failures each further one doubles the wait, up to the maximum.
        self.LOGIN_FREE_FAILURES = _env_int("LOGIN_FREE_FAILURES", 3)
        self.LOGIN_FREE_FAILURES_PER_IP = _env_int("LOGIN_FREE_FAILURES_PER_IP", 20)
        self.LOGIN_BACKOFF_SECONDS = _env_float("LOGIN_BACKOFF_SECONDS", 1.0)
        self.LOGIN_BACKOFF_MAX_SECONDS = _env_float("LOGIN_BACKOFF_MAX_SECONDS", 900.0)
        self.LOGIN_WINDOW_HOURS = _env_float("LOGIN_WINDOW_HOURS", 24.0)

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
