"""Caller context from the company's CRM.

The voice session calls `lookup_caller(number)` at setup; it never takes longer
than CRM_TIMEOUT_MS and returns None when no CRM is configured, the caller is
unknown, or the CRM is slow or failing. `greeting_for(info, greeting)`
addresses a known caller by name. What the answer engine may know of the
caller is voice.caller's business (crm knows nothing of rag).

Settings: CRM_KIND (bitrix24 | amocrm | webhook; none by default), CRM_URL,
CRM_TOKEN, CRM_TIMEOUT_MS (the whole lookup's budget, 1500), CRM_CACHE_TTL
(seconds a number's answer is remembered, 300).
"""
from __future__ import annotations

import logging
import re
import time

from flask import current_app, has_app_context

from config import DEFAULTS

from .. import phones
from .amocrm import AmoCRM
from .bitrix24 import Bitrix24
from .budget import BudgetExceeded, run_within
from .cache import TTLCache
from .http import Client, CRMError
from .types import CallerInfo
from .webhook import Webhook

__all__ = ["CallerInfo", "lookup_caller", "greeting_for", "clear_cache", "ADAPTERS"]

log = logging.getLogger(__name__)

ADAPTERS = {"bitrix24": Bitrix24, "amocrm": AmoCRM, "webhook": Webhook}
_OFF = ("", "none", "off", "no", "false", "0")

_cache = TTLCache(max_size=2048)


def clear_cache() -> None:
    _cache.clear()


def _settings(config) -> dict:
    if config is None:
        config = current_app.config if has_app_context() else {}
    # A partial mapping (a script's, a test's) gets the declared defaults for what it leaves out.
    values = {**DEFAULTS, **(config if hasattr(config, "keys") else vars(config))}
    return {
        "kind": (values["CRM_KIND"] or "").strip().lower(),
        "url": (values["CRM_URL"] or "").strip(),
        "token": (values["CRM_TOKEN"] or "").strip() or None,
        "timeout_ms": int(values["CRM_TIMEOUT_MS"] or 0),
        "cache_ttl": float(values["CRM_CACHE_TTL"] or 0),
    }


def lookup_caller(number: str | None, config=None) -> CallerInfo | None:
    """Who is calling, from the CRM chosen in settings, within CRM_TIMEOUT_MS.

    `config` defaults to the current app's config. Never raises: any CRM
    trouble means a call without context.
    """
    s = _settings(config)
    if s["kind"] in _OFF:
        return None
    adapter_cls = ADAPTERS.get(s["kind"])
    if adapter_cls is None:
        log.error("CRM_KIND=%r is not one of %s; calls go without CRM context", s["kind"], ", ".join(ADAPTERS))
        return None
    phone = phones.normalize_phone(number)
    if not phone:
        return None
    key = (s["kind"], s["url"], phone)
    hit, cached = _cache.get(key)
    if hit:
        return cached

    budget = s["timeout_ms"] / 1000.0
    if budget <= 0:
        return None  # CRM_TIMEOUT_MS=0: no time to ask, so do not
    started = time.monotonic()
    client = Client(deadline=started + budget)

    def lookup():
        adapter = adapter_cls(s["url"], s["token"], client)
        return adapter.lookup(phone)

    try:
        info = run_within(budget, lookup)
    except (BudgetExceeded, CRMError) as err:
        log.warning("CRM %s lookup for %s failed after %.0f ms: %s",
                    s["kind"], phones.masked(phone), (time.monotonic() - started) * 1000, err)
        return None
    except Exception:  # a CRM must never break a call
        log.exception("CRM %s lookup for %s crashed", s["kind"], phones.masked(phone))
        return None
    if info is not None:
        info.source = s["kind"]
        info.raw["phone"] = phone
        info.resolve_names().clip()
    log.info("CRM %s lookup for %s: %s in %.0f ms (%d requests)", s["kind"], phones.masked(phone),
             "found" if info else "unknown", (time.monotonic() - started) * 1000, client.requests)
    _cache.put(key, info, s["cache_ttl"])
    return info


# The opening salutation of a configured greeting, which the personal one replaces.
_SALUTATION = re.compile(
    r"^\s*(здравствуйте|добрый\s+день|добрый\s+вечер|доброе\s+утро|доброго\s+дня|"
    r"приветствуем\s+вас|приветствую\s+вас|приветствуем|приветствую|привет)\s*(?:[!.,]+\s*|$)",
    re.IGNORECASE,
)


def greeting_for(info: CallerInfo | None, greeting: str) -> str:
    """The greeting, addressed to the caller by name and patronymic when known.

    «Здравствуйте! Вы позвонили…» becomes «Здравствуйте, Иван Петрович! Вы позвонили…»;
    a greeting that opens otherwise gets «Здравствуйте, Иван Петрович!» in front.
    """
    who = info.address if info is not None else None
    greeting = greeting or ""
    if not who:
        return greeting
    m = _SALUTATION.match(greeting)
    if m:
        opener = m.group(1)
        opener = opener[:1].upper() + opener[1:]
        rest = greeting[m.end():].strip()
    else:
        opener, rest = "Здравствуйте", greeting.strip()
    if rest:
        rest = rest[:1].upper() + rest[1:]
    return f"{opener}, {who}!" + (f" {rest}" if rest else "")
