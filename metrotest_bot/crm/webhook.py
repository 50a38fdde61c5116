"""A generic HTTP webhook: GET CRM_URL?phone=+7XXXXXXXXXX.

The company's own service answers 200 with a JSON object
{"name", "company", "manager", "manager_phone", "notes"} (optionally
"first_name", "patronymic", "last_name"), or 404 / 204 / {} / null for an
unknown number. CRM_TOKEN, when set, is sent as "Authorization: Bearer ...".
"""
from __future__ import annotations

from .. import phones
from .http import Client, CRMError
from .types import CallerInfo

NAME = "webhook"


class Webhook:
    def __init__(self, url: str, token: str | None, client: Client):
        if not url:
            raise CRMError("CRM_URL (the webhook address) is not set")
        self.url = url
        self.client = client
        if token:
            client.headers["Authorization"] = f"Bearer {token}"

    def lookup(self, phone: str) -> CallerInfo | None:
        resp = self.client.get(self.url, {"phone": phone})
        if resp.status in (204, 404):
            return None
        if resp.status >= 400:
            raise CRMError(f"webhook answered HTTP {resp.status}")
        data = resp.data
        if data is None or data == {} or (isinstance(data, dict) and data.get("found") is False):
            return None
        if not isinstance(data, dict):
            raise CRMError("webhook answer is not a JSON object")
        info = CallerInfo(
            name=_text(data.get("name")),
            first_name=_text(data.get("first_name")),
            patronymic=_text(data.get("patronymic") or data.get("middle_name") or data.get("second_name")),
            last_name=_text(data.get("last_name")),
            company=_text(data.get("company")),
            manager_name=_text(data.get("manager") or data.get("manager_name")),
            manager_phone=phones.transfer_target(_text(data.get("manager_phone"))),
            notes=_text(data.get("notes")),
            source=NAME,
        )
        if not any((info.name, info.first_name, info.last_name, info.company)):
            return None
        return info


def _text(value) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    value = str(value).strip()
    return value[:1000] or None
