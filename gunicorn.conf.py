"""Placeholder: the voice helper tunes this for the gevent worker."""
bind = "0.0.0.0:8000"
worker_class = "gevent"
workers = 1
