"""Shared fixtures live in tests/support/, one module per concern."""
import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

pytest_plugins = [
    "tests.support.databases",
    "tests.support.apps",
    "tests.support.live_server",
    "tests.support.openai_server",
    "tests.support.fake_elasticsearch",
    "tests.support.fake_crm",
    "tests.support.admin_data",
    "tests.support.browser",
    "tests.support.webhook_receiver",
    "tests.support.media_server",
]
