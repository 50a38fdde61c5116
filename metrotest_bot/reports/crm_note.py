"""The call written back to the CRM: a note on the caller's card with the summary (CRM_CALL_NOTES).

When the CRM (CRM_KIND bitrix24 or amocrm) knew the caller at setup, the call's end queues a
note in the webhook's durable outbox (`call_webhooks.target = "crm"`, webhook.py), delivered
by the same background sender with the same retries and backoff: a slow or failing CRM never
delays a call, and a restart loses nothing. The note goes on the card the lookup found:

- Bitrix24: `crm.timeline.comment.add` {fields: {ENTITY_ID, ENTITY_TYPE: contact|company, COMMENT}}
  on the incoming webhook (CRM_URL); the answer is {"result": <comment id>}.
- amoCRM: `POST /api/v4/{contacts|companies}/{id}/notes` with [{"note_type": "common",
  "params": {"text": ...}}] and the long-lived token (CRM_TOKEN); 200 with `_embedded.notes`.

Sent through the CRM's pooled httpx client (crm/http.py), each note bound to its own
deadline (CALL_WEBHOOK_TIMEOUT), not to the lookup's budget of a call's setup.
"""
from __future__ import annotations

import json
import time
from zoneinfo import ZoneInfo

from ..crm.http import Client, CRMError
from ..models import WEBHOOK_PENDING, CallWebhook
from ..outcomes import outcome_label
from ..timeutil import as_utc, utcnow

TARGET = "crm"
KINDS = ("bitrix24", "amocrm")
MAX_TEXT = 4000


def enabled(config) -> bool:
    return bool(config["CRM_CALL_NOTES"]) and (config["CRM_KIND"] or "").strip().lower() in KINDS


def card_of(call) -> tuple[str, int] | None:
    """("contact" | "company", id) of the card the lookup found at setup, or None."""
    raw = (call.crm_data or {}).get("raw") or {}
    for entity in ("contact", "company"):
        value = raw.get(f"{entity}_id")
        if value is not None and str(value).isdigit() and int(value) > 0:
            return entity, int(value)
    return None


def _duration(seconds) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f", {seconds // 60} мин {seconds % 60} с" if seconds >= 60 else f", {seconds} с"


def note_text(call, tz: ZoneInfo) -> str:
    started = as_utc(call.started_at)
    stamp = started.astimezone(tz).strftime("%d.%m.%Y %H:%M") if started else "—"
    text = (f"Звонок голосовому помощнику {stamp}{_duration(call.duration_s)}, номер {call.caller or 'скрыт'}. "
            f"Итог: {outcome_label(call.outcome)}.\n{call.summary or ''}").strip()
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def enqueue(session, call, config) -> bool:
    """Queue the call's note when the CRM knew the caller (in the transaction that queues its webhook)."""
    card = card_of(call) if enabled(config) else None
    if card is None:
        return False
    tz = ZoneInfo(config["COMPANY_TZ"])
    body = json.dumps({"kind": config["CRM_KIND"].strip().lower(), "entity": card[0], "id": card[1],
                       "text": note_text(call, tz)}, ensure_ascii=False)
    session.add(CallWebhook(call_id=call.id, target=TARGET, body=body, status=WEBHOOK_PENDING, attempts=0,
                            created_at=utcnow(), next_attempt_at=utcnow()))
    return True


# --- delivery (WebhookSender.post for rows with target "crm") ------------------------------------

def request_for(config, note: dict) -> tuple[str, object, dict]:
    """(URL, JSON payload, headers) of the note's POST."""
    url = (config["CRM_URL"] or "").strip()
    headers = {}
    if note["kind"] == "bitrix24":
        url = (url if url.endswith("/") else url + "/") + "crm.timeline.comment.add"
        payload = {"fields": {"ENTITY_ID": note["id"], "ENTITY_TYPE": note["entity"], "COMMENT": note["text"]}}
    else:
        base = url.rstrip("/")
        base = base[: -len("/api/v4")] if base.endswith("/api/v4") else base
        url = f"{base}/api/v4/{note['entity']}s/{note['id']}/notes"
        payload = [{"note_type": "common", "params": {"text": note["text"]}}]
        headers["Authorization"] = f"Bearer {(config['CRM_TOKEN'] or '').strip()}"
    return url, payload, headers


def deliver(config, body: str, timeout: float) -> str | None:
    """Post one note; None when the CRM took it, else what went wrong (retried by the outbox)."""
    note = json.loads(body)
    url, payload, headers = request_for(config, note)
    try:
        response = Client(deadline=time.monotonic() + timeout, headers=headers).post_json(url, payload)
    except CRMError as exc:  # refused, timed out, bad URL, not JSON
        return str(exc)
    data, status = response.data, response.status
    if not 200 <= status < 300:
        detail = json.dumps(data, ensure_ascii=False)[:2000] if data is not None else ""
        return f"HTTP {status} {detail}".strip()
    if note["kind"] == "bitrix24" and not (isinstance(data, dict) and data.get("result")):
        error = data.get("error_description") or data.get("error") if isinstance(data, dict) else None
        return f"Bitrix24: {error or 'answer without result'}"
    if note["kind"] == "amocrm" and not (isinstance(data, dict) and (data.get("_embedded") or {}).get("notes")):
        return "amoCRM: answer without notes"
    return None
