"""amoCRM API v4 with a long-lived token (CRM_URL = https://SUBDOMAIN.amocrm.ru, CRM_TOKEN).

- GET /api/v4/contacts?query=...: full-text search over filled fields;
  204 No Content when nothing matches. Contacts carry name, first_name,
  last_name, responsible_user_id, custom_fields_values (field_code PHONE)
  and _embedded.companies (ids).
- GET /api/v4/companies?query=... when no contact holds the number.
- GET /api/v4/companies/{id}, GET /api/v4/users/{id}: company and manager names.
Requests carry "Authorization: Bearer <token>"; a bad token answers 401
(application/problem+json). amoCRM users have no phone field, so a manager's
number is not known here and transfers go to the general operator.
"""
from __future__ import annotations

from .. import phones
from .http import Client, CRMError
from .types import CallerInfo

NAME = "amocrm"


class AmoCRM:
    def __init__(self, url: str, token: str | None, client: Client):
        if not url or not token:
            raise CRMError("amoCRM needs CRM_URL (https://SUBDOMAIN.amocrm.ru) and CRM_TOKEN")
        self.base = url.rstrip("/")
        if self.base.endswith("/api/v4"):
            self.base = self.base[: -len("/api/v4")]
        self.client = client
        client.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, params: dict | None = None):
        resp = self.client.get(self.base + path, params)
        if resp.status == 204 or (resp.status == 404 and not path.endswith(("/contacts", "/companies"))):
            return None
        if resp.status >= 400:
            detail = resp.data.get("detail") or resp.data.get("title") if isinstance(resp.data, dict) else None
            raise CRMError(f"amoCRM {path}: HTTP {resp.status} {detail or ''}".strip())
        if not isinstance(resp.data, dict):
            raise CRMError(f"amoCRM {path}: answer is not a JSON object")
        return resp.data

    def search(self, entity: str, phone: str) -> dict | None:
        # The national digits are a substring of every common stored form
        # (+79..., 89..., 79...); matches are then checked number by number.
        data = self.get(f"/api/v4/{entity}", {"query": phones.national(phone), "limit": 10})
        items = ((data or {}).get("_embedded") or {}).get(entity) or []
        for item in items:
            if isinstance(item, dict) and phone in _phones_of(item):
                return item
        return None

    def lookup(self, phone: str) -> CallerInfo | None:
        contact = self.search("contacts", phone)
        if contact is not None:
            info = CallerInfo(
                name=_text(contact.get("name")), first_name=_text(contact.get("first_name")),
                last_name=_text(contact.get("last_name")), source=NAME,
                raw={"contact_id": contact.get("id")},
            )
            companies = (contact.get("_embedded") or {}).get("companies") or []
            if companies and isinstance(companies[0], dict) and companies[0].get("id"):
                company = self.get(f"/api/v4/companies/{int(companies[0]['id'])}")
                if company:
                    info.company = _text(company.get("name"))
                    info.raw["company_id"] = company.get("id")
            self._add_manager(info, contact.get("responsible_user_id"))
            return info
        company = self.search("companies", phone)
        if company is not None:
            info = CallerInfo(company=_text(company.get("name")), source=NAME,
                              raw={"company_id": company.get("id")})
            self._add_manager(info, company.get("responsible_user_id"))
            return info
        return None

    def _add_manager(self, info: CallerInfo, user_id) -> None:
        if not user_id:
            return
        try:
            user = self.get(f"/api/v4/users/{int(user_id)}")
        except CRMError as err:
            # Reading users needs admin rights; the caller's own card is still worth having.
            info.raw["manager_error"] = str(err)[:200]
            return
        if user:
            info.manager_name = _text(user.get("name"))
            info.raw["manager_id"] = user.get("id")


def _phones_of(item: dict) -> set[str]:
    found = set()
    for field in item.get("custom_fields_values") or []:
        if not isinstance(field, dict) or (field.get("field_code") or "").upper() != "PHONE":
            continue
        for value in field.get("values") or []:
            number = phones.normalize_phone(value.get("value") if isinstance(value, dict) else None)
            if number:
                found.add(number)
    return found


def _text(value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None
