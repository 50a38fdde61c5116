"""gunicorn settings for the gevent worker (the voice helper tunes these)."""
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gevent"
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
