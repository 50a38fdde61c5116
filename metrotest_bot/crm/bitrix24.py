"""Bitrix24 through an incoming webhook (CRM_URL = https://PORTAL.bitrix24.ru/rest/1/SECRET/).

Methods used (the webhook needs the `crm` and `user` scopes):
- crm.duplicate.findbycomm {entity_type, type: "PHONE", values}: ids of the
  contacts (then companies) holding the number; `result` is [] when none.
- crm.contact.get {id}: NAME, SECOND_NAME (patronymic), LAST_NAME, COMPANY_ID, ASSIGNED_BY_ID.
- crm.company.get {id}: TITLE, ASSIGNED_BY_ID.
- user.get {filter: {ID}}: the responsible manager's name and phones.
Errors come as {"error": ..., "error_description": ...} with an HTTP 4xx/5xx.
"""
from __future__ import annotations

from .. import phones
from .http import Client, CRMError
from .types import CallerInfo

NAME = "bitrix24"


class Bitrix24:
    def __init__(self, url: str, token: str | None, client: Client):
        if not url:
            raise CRMError("CRM_URL (the Bitrix24 incoming-webhook URL) is not set")
        self.base = url if url.endswith("/") else url + "/"
        self.client = client

    def call(self, method: str, params: dict):
        resp = self.client.post_json(self.base + method, params)
        data = resp.data if isinstance(resp.data, dict) else {}
        if resp.status >= 400 or "error" in data:
            code = data.get("error") or f"HTTP {resp.status}"
            desc = data.get("error_description") or ""
            if desc.strip().lower() == "not found":
                return None
            raise CRMError(f"Bitrix24 {method}: {code} {desc}".strip())
        if "result" not in data:
            raise CRMError(f"Bitrix24 {method}: answer without result")
        return data["result"]

    def find(self, entity_type: str, phone: str) -> list[int]:
        result = self.call("crm.duplicate.findbycomm", {
            "entity_type": entity_type, "type": "PHONE", "values": phones.stored_forms(phone),
        })
        ids = result.get(entity_type, []) if isinstance(result, dict) else []  # [] means none found
        return [int(i) for i in ids if str(i).isdigit()]

    def lookup(self, phone: str) -> CallerInfo | None:
        contact_ids = self.find("CONTACT", phone)
        if contact_ids:
            # The oldest card (lowest id) is the client's main one.
            contact = self.call("crm.contact.get", {"id": min(contact_ids)})
            if isinstance(contact, dict):
                return self._from_contact(contact)
        company_ids = self.find("COMPANY", phone)
        if company_ids:
            company = self.call("crm.company.get", {"id": min(company_ids)})
            if isinstance(company, dict):
                info = CallerInfo(company=_text(company.get("TITLE")), source=NAME,
                                  raw={"company_id": company.get("ID")})
                self._add_manager(info, company.get("ASSIGNED_BY_ID"))
                return info
        return None

    def _from_contact(self, contact: dict) -> CallerInfo:
        first, second, last = (_text(contact.get(k)) for k in ("NAME", "SECOND_NAME", "LAST_NAME"))
        info = CallerInfo(
            name=" ".join(p for p in (last, first, second) if p) or None,
            first_name=first, patronymic=second, last_name=last, source=NAME,
            raw={"contact_id": contact.get("ID"), "company_id": contact.get("COMPANY_ID")},
        )
        company_id = contact.get("COMPANY_ID")
        if company_id and str(company_id) not in ("0", ""):
            company = self.call("crm.company.get", {"id": company_id})
            if isinstance(company, dict):
                info.company = _text(company.get("TITLE"))
        self._add_manager(info, contact.get("ASSIGNED_BY_ID"))
        return info

    def _add_manager(self, info: CallerInfo, user_id) -> None:
        if not user_id or str(user_id) in ("0", ""):
            return
        users = self.call("user.get", {"filter": {"ID": str(user_id)}})
        user = users[0] if isinstance(users, list) and users else None
        if not isinstance(user, dict):
            return
        info.manager_name = " ".join(p for p in (_text(user.get("NAME")), _text(user.get("LAST_NAME"))) if p) or None
        # A transfer needs a dialable number; an inner extension alone is kept for the log only.
        for key in ("WORK_PHONE", "PERSONAL_MOBILE"):
            number = phones.normalize_phone(user.get(key))
            if number:
                info.manager_phone = number
                break
        info.raw["manager_id"] = user.get("ID")
        if _text(user.get("UF_PHONE_INNER")):
            info.raw["manager_extension"] = _text(user.get("UF_PHONE_INNER"))


def _text(value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None
