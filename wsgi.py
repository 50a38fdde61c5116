"""gunicorn's entry point: `gunicorn -k gevent -c gunicorn.conf.py wsgi:app`."""
from metrotest_bot import create_app

app = create_app()
