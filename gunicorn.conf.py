"""gunicorn settings: gevent workers holding many long-lived call WebSockets.

`make run` starts `gunicorn -c gunicorn.conf.py wsgi:app`. Every value can be
overridden through the environment (GUNICORN_*).

Monkey-patching order. The gevent worker calls `gevent.monkey.patch_all()` in
the worker process right after the fork, before it imports `wsgi:app`. So the
app, and everything it imports (socket, ssl, threading, selectors, httpx for
the LLM, psycopg, simple-websocket's reader thread), loads already patched:
 - simple-websocket's background "thread" becomes a greenlet and its
   threading.Event a gevent Event, so a blocked `ws.receive()` yields;
 - psycopg 3 picks its gevent-friendly wait function only when it is first
   imported after patching (psycopg.waiting checks gevent.monkey);
 - the openai client's httpx sockets become cooperative, so closing an
   answer's greenlet closes its LLM stream without blocking the worker.
For that to hold, this file imports nothing of the app at module level (the
master reads it unpatched; its worker hooks import the app inside the worker),
and `preload_app` stays off: preloading would import the app in the master.
"""
import os


def _env(name, default):
    return os.environ.get(name) or default


bind = _env("GUNICORN_BIND", "0.0.0.0:8000")
# One gevent worker per core by default: each holds hundreds of calls, and a core is what one saturates.
workers = int(_env("GUNICORN_WORKERS", str(os.cpu_count() or 1)))
worker_class = "gevent"
preload_app = False  # see above: the app must be imported after patch_all()

# One call is one connection held for minutes; a worker holds hundreds.
worker_connections = int(_env("GUNICORN_WORKER_CONNECTIONS", "1000"))
# Heartbeat timeout: a gevent worker notifies the master from its hub once a second,
# so this only fires when something blocks the hub, never for a long call. It also
# bounds a worker's start (app import and warm-up; `make run` builds the KB index first).
timeout = int(_env("GUNICORN_TIMEOUT", "30"))
# On SIGTERM / restart: stop accepting, give calls in progress this long to end,
# then close them (each is logged as lost).
graceful_timeout = int(_env("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Idle HTTP keep-alive; behind a load balancer set it above the balancer's idle timeout.
keepalive = int(_env("GUNICORN_KEEPALIVE", "5"))
# Recycle nothing: a restart would drop the calls of the worker.
max_requests = 0

# The heartbeat file on tmpfs: a disk that stalls must not make the master kill a worker.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# gunicorn's runtime control socket (gunicornc) is one fixed path per user: several
# servers on a machine (tests, staging) would fight over it. Off unless a path is given.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True

# Behind a reverse proxy (TLS for wss://), trust its X-Forwarded-* headers.
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

def _redact_tokens_in_every_log_line():
    """`token=…` masked in every record, gunicorn's own included (a malformed request
    line is logged whole). metrotest_bot/logredact.py is loaded by path: importing
    the package would import the app here in the master, before gevent patches."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrotest_bot", "logredact.py")
    spec = importlib.util.spec_from_file_location("metrotest_logredact", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install()


_redact_tokens_in_every_log_line()

# Everything to stdout: gunicorn's own log, the access log, the app's log.
loglevel = _env("LOG_LEVEL", "info").lower()
accesslog = "-"
errorlog = "-"
# %(U)s is the path without the query string: the call socket's ?token= stays out of the log.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": loglevel.upper(), "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stdout"], "propagate": False,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False,
                            "qualname": "gunicorn.access"},
        # Third-party chatter at INFO (every HTTP request to the LLM) is noise here.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "elastic_transport": {"level": "WARNING"},
        "haystack": {"level": "WARNING"},
        "alembic": {"level": "WARNING"},
        "pymorphy3": {"level": "WARNING"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stdout"},
    },
    "formatters": {
        "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                    "datefmt": "%Y-%m-%d %H:%M:%S %z", "class": "logging.Formatter"},
    },
}


GC_THRESHOLDS = (10_000, 50, 1_000)


def post_worker_init(worker):
    """In each worker, after the app is imported (so after patch_all): warm up, then freeze.

    The KB index and the LLM client library load now, not during the first call. Then
    gc.freeze() moves every object alive so far (~200k: libraries, dictionaries, the KB
    index) out of the collector's reach: a full collection over them takes ~100 ms, and
    under gevent that is 100 ms of silence on every call of the worker.
    """
    import gc

    try:
        with worker.wsgi.app_context():
            from metrotest_bot.rag import get_engine

            get_engine().passage_count()
        import openai  # noqa: F401  (else imported by the first LLM answer)
    except Exception:  # a failed warm-up only means the first call loads what is missing
        worker.log.exception("worker warm-up failed")
    gc.collect()
    gc.freeze()
    # Collections less often: a worker streaming hundreds of answers allocates a few million objects
    # a second (parsed chunks, frames, rows), nearly none of them in cycles, and at the default
    # (700, 10, 10) it spent ~0.8 ms of CPU per answer scanning them (issue #16, bench/load.py at 300
    # calls: 9.4 -> 8.6 ms). Cyclic garbage still goes, a little later: a full collection waits for at
    # least [0] * [1] * [2] allocations (and for the objects awaiting one to reach 25 % of the long-lived
    # ones: minutes under load); a generation-1 pass scans up to [0] * [1] objects, so passes are rarer
    # but longer — the load bench's p99 first-piece latency is where such a pause would show.
    gc.set_threshold(*GC_THRESHOLDS)
    _end_calls_before_the_kill(worker)


def _end_calls_before_the_kill(worker):
    """On SIGTERM the master SIGKILLs a worker still busy after graceful_timeout, and the
    gevent worker's own wind-down takes a second or two longer than that. So calls still
    open near the deadline are ended by the app itself (socket closed with 1001, call
    logged as lost), instead of dying with the process and staying "in progress"."""
    import signal

    import gevent

    from metrotest_bot.voice.session import end_all_calls

    previous = signal.getsignal(signal.SIGTERM)
    grace = worker.cfg.graceful_timeout

    def on_term(signum, frame):
        if callable(previous):
            previous(signum, frame)
        gevent.spawn_later(max(0.0, grace * 0.8 - 1.0), end_all_calls)

    signal.signal(signal.SIGTERM, on_term)
