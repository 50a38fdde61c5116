"""A local HTTP server answering as Bitrix24's, amoCRM's and a generic webhook's APIs do.

One server on 127.0.0.1 (free port) serves all three, as documented:

Bitrix24 incoming webhook, POST {bitrix_url}<method> with a JSON body
(`bitrix_url` = http://127.0.0.1:PORT/rest/1/SECRET/):
- crm.duplicate.findbycomm {entity_type, type: "PHONE", values (<= 20)}:
  {"result": {"CONTACT": [ids]}, "time": {...}}, and {"result": []} when
  nothing matches. Like the real one, a value matches a stored phone when
  their digits are equal: "89123456789" does not find "+7 912 345-67-89".
- crm.contact.get / crm.company.get {id}: {"result": {...}}; an unknown id is
  HTTP 400 {"error": "", "error_description": "Not found"}.
- user.get {filter: {ID}} or {ID}: {"result": [users], "total": n}.
- crm.timeline.comment.add {fields: {ENTITY_ID, ENTITY_TYPE (contact|company|lead|deal),
  COMMENT}}: {"result": <comment id>}; a missing field or an unknown card is HTTP 400.
- a wrong webhook secret: HTTP 401 {"error": "NO_AUTH_FOUND", ...}; an unknown
  method: HTTP 404 {"error": "ERROR_METHOD_NOT_FOUND", ...}.

amoCRM API v4 (`amo_url` = http://127.0.0.1:PORT), "Authorization: Bearer TOKEN":
- GET /api/v4/contacts|companies?query=...: substring search over filled
  fields; application/hal+json {"_embedded": {"contacts": [...]}}, or
  204 No Content when nothing matches.
- GET /api/v4/companies/{id}, /api/v4/users/{id}; 204 for an unknown id.
- POST /api/v4/contacts|companies/{id}/notes [{"note_type": "common", "params": {"text"}}]:
  200 {"_embedded": {"notes": [{"id", "entity_id", "request_id"}]}}; 400 for a bad body.
- a missing or wrong token: 401 application/problem+json.

Generic webhook (`webhook_url`): GET ?phone=+7XXXXXXXXXX -> 200 JSON
{name, company, manager, manager_phone, notes}, or 404.

Modes for failure tests: `delay` seconds before any answer; mode "error500"
(HTTP 500 in each API's error shape), "hang" (never answers until reset),
"drip" (headers at once, then the body a byte at a time). `requests` records
every request as (method, path, query dict, JSON body or None, headers);
`notes` every note written on a card, as {crm, entity, id, text}.
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse

import pytest

from .http_fake import HTTPFake, QuietHandler, fresh, serve

SECRET = "w3bh00ks3cr3t"
AMO_TOKEN = "amo-long-lived-token"

# Callers the default data set knows, by canonical number.
BITRIX_CONTACT_PHONE = "+79123456789"   # stored as "8 (912) 345-67-89": Иван Петрович Сидоров
BITRIX_JUNK_NAME_PHONE = "+73435551234"  # a contact named «Бухгалтерия»
BITRIX_COMPANY_PHONE = "+73431112233"    # a company card only, no person
BITRIX_MANAGER_PHONE = "+73432000006"    # Анна Смирнова, the manager of Сидоров
AMO_CONTACT_PHONE = "+79221234567"       # Кузнецова Ольга Викторовна
WEBHOOK_PHONE = "+79035556677"           # Петров Алексей Николаевич
WEBHOOK_MANAGER_PHONE = "+73433000007"
UNKNOWN_PHONE = "+79990001122"
SECRET_NOTE = "Просил скидку пятнадцать процентов, никому не озвучивать"


def _digits(s) -> str:
    return re.sub(r"\D", "", str(s or ""))


def default_bitrix():
    contacts = {
        43: {"ID": "43", "NAME": "Иван", "SECOND_NAME": "Петрович", "LAST_NAME": "Сидоров",
             "HONORIFIC": "HNR_RU_1", "TYPE_ID": "CLIENT", "COMPANY_ID": "12", "ASSIGNED_BY_ID": "6",
             "COMMENTS": SECRET_NOTE, "HAS_PHONE": "Y", "OPENED": "Y",
             "PHONE": [{"ID": "156", "VALUE_TYPE": "WORK", "VALUE": "8 (912) 345-67-89", "TYPE_ID": "PHONE"}]},
        44: {"ID": "44", "NAME": "Бухгалтерия", "SECOND_NAME": None, "LAST_NAME": None,
             "COMPANY_ID": "12", "ASSIGNED_BY_ID": "6", "HAS_PHONE": "Y",
             "PHONE": [{"ID": "160", "VALUE_TYPE": "WORK", "VALUE": "+73435551234", "TYPE_ID": "PHONE"}]},
    }
    companies = {
        12: {"ID": "12", "TITLE": "ООО «УралСпецСтрой»", "COMPANY_TYPE": "CUSTOMER", "ASSIGNED_BY_ID": "6",
             "HAS_PHONE": "Y", "PHONE": [{"ID": "170", "VALUE_TYPE": "WORK", "VALUE": "+7 343 222-11-00",
                                          "TYPE_ID": "PHONE"}]},
        14: {"ID": "14", "TITLE": "НИИ Стройматериалов", "COMPANY_TYPE": "CUSTOMER", "ASSIGNED_BY_ID": "7",
             "HAS_PHONE": "Y", "PHONE": [{"ID": "171", "VALUE_TYPE": "WORK", "VALUE": "+73431112233",
                                          "TYPE_ID": "PHONE"}]},
    }
    users = {
        6: {"ID": "6", "ACTIVE": True, "NAME": "Анна", "LAST_NAME": "Смирнова", "SECOND_NAME": "",
            "EMAIL": "smirnova@example.ru", "WORK_PHONE": "+7 (343) 200-00-06", "PERSONAL_MOBILE": "",
            "UF_PHONE_INNER": "106", "WORK_POSITION": "Менеджер"},
        7: {"ID": "7", "ACTIVE": True, "NAME": "Павел", "LAST_NAME": "Егоров", "SECOND_NAME": "",
            "EMAIL": "egorov@example.ru", "WORK_PHONE": "", "PERSONAL_MOBILE": "", "UF_PHONE_INNER": "107"},
    }
    return contacts, companies, users


def default_amo(base: str):
    def links(path):
        return {"self": {"href": f"{base}{path}"}}

    contacts = {
        403181: {"id": 403181, "name": "Кузнецова Ольга Викторовна", "first_name": "Ольга",
                 "last_name": "Кузнецова", "responsible_user_id": 112313, "group_id": 0, "created_by": 112313,
                 "updated_by": 112313, "created_at": 1700000000, "updated_at": 1700000000,
                 "closest_task_at": None, "is_deleted": False, "account_id": 28000000,
                 "custom_fields_values": [
                     {"field_id": 3, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext",
                      "values": [{"value": "+79221234567", "enum_id": 1, "enum_code": "WORK"}]},
                     {"field_id": 7, "field_name": "Примечание", "field_code": None, "field_type": "text",
                      "values": [{"value": SECRET_NOTE}]},
                 ],
                 "_links": links("/api/v4/contacts/403181"),
                 "_embedded": {"tags": [], "companies": [{"id": 40318188,
                                                           "_links": links("/api/v4/companies/40318188")}]}},
    }
    companies = {
        40318188: {"id": 40318188, "name": "Лаборатория «СтройКонтроль»", "responsible_user_id": 112313,
                   "group_id": 0, "account_id": 28000000,
                   "custom_fields_values": [
                       {"field_id": 3, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext",
                        "values": [{"value": "+73432223344", "enum_id": 1, "enum_code": "WORK"}]}],
                   "_links": links("/api/v4/companies/40318188"), "_embedded": {"tags": []}},
    }
    users = {112313: {"id": 112313, "name": "Дмитрий Орлов", "email": "orlov@example.ru", "lang": "ru",
                      "rights": {"is_admin": False, "is_free": False, "is_active": True},
                      "_links": links("/api/v4/users/112313")}}
    return contacts, companies, users


def default_webhook():
    return {WEBHOOK_PHONE: {"name": "Петров Алексей Николаевич", "company": "АО «Металлтест»",
                            "manager": "Елена Васильевна Белова", "manager_phone": "+7 (343) 300-00-07",
                            "notes": SECRET_NOTE}}


class FakeCRM(HTTPFake):
    def __init__(self):
        self.lock = threading.Lock()
        self.release = threading.Event()
        super().__init__()
        self.bitrix_url = f"{self.url}/rest/1/{SECRET}/"
        self.amo_url = self.url
        self.webhook_url = f"{self.url}/crm/caller"
        self.amo_token = AMO_TOKEN
        self.reset()

    def stop(self):
        self.release.set()  # hung handlers answer nothing and end
        super().stop()

    def reset(self):
        self.release.set()  # let hung handlers of the previous test go
        self.release = threading.Event()
        self.mode = "ok"
        self.delay = 0.0
        self.requests: list[tuple] = []
        self.bitrix_contacts, self.bitrix_companies, self.bitrix_users = default_bitrix()
        self.amo_contacts, self.amo_companies, self.amo_users = default_amo(self.url)
        self.webhook_records = default_webhook()
        self.webhook_token = None
        self.notes: list[dict] = []

    def settings(self, kind: str, **overrides) -> dict:
        """CRM_* settings pointing at this server (for Config overrides or live_server_factory)."""
        url = {"bitrix24": self.bitrix_url, "amocrm": self.amo_url, "webhook": self.webhook_url}[kind]
        token = {"amocrm": self.amo_token, "webhook": self.webhook_token}.get(kind)
        return {"CRM_KIND": kind, "CRM_URL": url, "CRM_TOKEN": token, **overrides}

    def calls(self, prefix: str = "") -> list[tuple]:
        with self.lock:
            return [r for r in self.requests if r[1].startswith(prefix) or prefix in r[1]]

    def bitrix_methods(self) -> list[str]:
        return [r[1].rsplit("/", 1)[-1] for r in self.calls("/rest/")]

    # -- HTTP ---------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            def do_GET(self):
                self._handle()

            def do_POST(self):
                self._handle()

            def _handle(self):
                split = urllib.parse.urlsplit(self.path)
                query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                with fake.lock:
                    fake.requests.append((self.command, split.path, query, body, dict(self.headers)))
                    mode, delay, release = fake.mode, fake.delay, fake.release
                if delay:
                    release.wait(delay)
                if mode == "hang":
                    release.wait(3600)
                    return
                path = split.path
                if path.startswith("/rest/"):
                    return self._bitrix(path, {**query, **(body or {})}, mode)
                if path.startswith("/api/v4/"):
                    return self._amo(path, query, mode, body)
                if path == "/crm/caller":
                    return self._webhook(query, mode)
                return self._send(404, {"error": "not found"})

            def _send(self, status, obj=None, ctype="application/json"):
                data = b"" if obj is None else json.dumps(obj, ensure_ascii=False).encode()
                self.send_response(status)
                if obj is not None:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fake.mode == "drip":
                    try:
                        for i in range(len(data)):
                            if fake.release.wait(0.2):
                                return
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                else:
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up waiting: what the slow modes are for

            # Bitrix24 ------------------------------------------------------

            def _bitrix(self, path, params, mode):
                m = re.match(r"^/rest/(\d+)/([^/]+)/([\w.]+?)(?:\.json)?$", path)
                if not m or m.group(2) != SECRET:
                    return self._send(401, {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"})
                if mode == "error500":
                    return self._send(500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"})
                method = m.group(3)
                t = time.time()
                timing = {"start": t, "finish": t + 0.01, "duration": 0.01, "processing": 0.005,
                          "date_start": "2025-06-23T16:07:40+03:00", "date_finish": "2025-06-23T16:07:40+03:00"}

                def ok(result, **extra):
                    return self._send(200, {"result": result, **extra, "time": timing})

                def err(status, code, desc):
                    return self._send(status, {"error": code, "error_description": desc})

                if method == "crm.duplicate.findbycomm":
                    if params.get("type") != "PHONE" and params.get("type") != "EMAIL":
                        return err(400, "", "Communication type is not defined")
                    values = params.get("values")
                    if not values or not isinstance(values, list):
                        return err(400, "", "Communication values is not defined")
                    if len(values) > 20:
                        return err(400, "", "Too many communication values")
                    wanted = {_digits(v) for v in values if _digits(v)}
                    types = params.get("entity_type")
                    types = [types] if types in ("LEAD", "CONTACT", "COMPANY") else ["LEAD", "CONTACT", "COMPANY"]
                    found = {}
                    for etype in types:
                        store = {"CONTACT": fake.bitrix_contacts, "COMPANY": fake.bitrix_companies}.get(etype, {})
                        ids = sorted(i for i, item in store.items()
                                     if any(_digits(p.get("VALUE")) in wanted for p in item.get("PHONE") or []))
                        if ids:
                            found[etype] = ids
                    return ok(found or [])
                if method in ("crm.contact.get", "crm.company.get"):
                    raw_id = params.get("id", params.get("ID"))
                    if not str(raw_id or "").isdigit() or int(raw_id) <= 0:
                        return err(400, "", "ID is not defined or invalid.")
                    store = fake.bitrix_contacts if method == "crm.contact.get" else fake.bitrix_companies
                    item = store.get(int(raw_id))
                    return ok(item) if item else err(400, "", "Not found")
                if method == "crm.timeline.comment.add":
                    fields = params.get("fields") or {}
                    entity, eid, text = (fields.get(k) for k in ("ENTITY_TYPE", "ENTITY_ID", "COMMENT"))
                    if entity not in ("contact", "company", "lead", "deal") or not str(eid or "").isdigit():
                        return err(400, "", "ENTITY_TYPE or ENTITY_ID is not defined or invalid.")
                    if not text:
                        return err(400, "", "COMMENT is not defined or invalid.")
                    store = {"contact": fake.bitrix_contacts, "company": fake.bitrix_companies}.get(entity, {})
                    if int(eid) not in store:
                        return err(400, "", "Not found")
                    with fake.lock:
                        fake.notes.append({"crm": "bitrix24", "entity": entity, "id": int(eid), "text": text})
                        return ok(len(fake.notes))
                if method == "user.get":
                    flt = params.get("filter") or params.get("FILTER") or {}
                    uid = flt.get("ID", params.get("ID"))
                    users = [u for i, u in sorted(fake.bitrix_users.items()) if uid is None or str(i) == str(uid)]
                    return ok(users, total=len(users))
                return err(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")

            # amoCRM --------------------------------------------------------

            def _amo(self, path, query, mode, body=None):
                problem = "application/problem+json"
                if self.headers.get("Authorization") != f"Bearer {fake.amo_token}":
                    return self._send(401, {"title": "Unauthorized", "type": "https://httpstatus.es/401",
                                            "status": 401, "detail": "Unauthorized"}, problem)
                if mode == "error500":
                    return self._send(500, {"title": "Internal Server Error", "type": "https://httpstatus.es/500",
                                            "status": 500, "detail": "Internal Server Error"}, problem)
                hal = "application/hal+json"
                note = re.match(r"^/api/v4/(contacts|companies|leads)/(\d+)/notes$", path)
                if note and self.command == "POST":
                    if not isinstance(body, list) or not body or not all(
                            isinstance(n, dict) and n.get("note_type") == "common"
                            and (n.get("params") or {}).get("text") for n in body):
                        return self._send(400, {"title": "Bad Request", "status": 400,
                                                "detail": "Request validation failed"}, problem)
                    eid = int(note.group(2))
                    with fake.lock:
                        made = []
                        for n in body:
                            fake.notes.append({"crm": "amocrm", "entity": note.group(1)[:-1].replace("companie", "company"),
                                               "id": eid, "text": n["params"]["text"]})
                            made.append({"id": len(fake.notes), "entity_id": eid, "request_id": str(len(made))})
                    return self._send(200, {"_links": {"self": {"href": f"{fake.url}{path}"}},
                                            "_embedded": {"notes": made}}, hal)
                m = re.match(r"^/api/v4/(contacts|companies|users)(?:/(\d+))?$", path)
                if not m:
                    return self._send(404, {"title": "Not Found", "status": 404}, problem)
                entity, item_id = m.group(1), m.group(2)
                store = {"contacts": fake.amo_contacts, "companies": fake.amo_companies, "users": fake.amo_users}[entity]
                if item_id:
                    item = store.get(int(item_id))
                    return self._send(200, item, hal) if item else self._send(204)
                q = (query.get("query") or "").lower()
                items = [it for _, it in sorted(store.items()) if not q or q in _searchable(it)]
                limit = int(query.get("limit") or 50)
                if not items:
                    return self._send(204)
                return self._send(200, {"_page": 1, "_links": {"self": {"href": f"{fake.url}{self.path}"}},
                                        "_embedded": {entity: items[:limit]}}, hal)

            # Webhook -------------------------------------------------------

            def _webhook(self, query, mode):
                if fake.webhook_token and self.headers.get("Authorization") != f"Bearer {fake.webhook_token}":
                    return self._send(401, {"error": "unauthorized"})
                if mode == "error500":
                    return self._send(500, {"error": "internal"})
                record = fake.webhook_records.get(query.get("phone", ""))
                return self._send(200, record) if record else self._send(404, {"error": "not found"})

        return Handler


def _searchable(item: dict) -> str:
    parts = [str(item.get(k) or "") for k in ("name", "first_name", "last_name")]
    for field in item.get("custom_fields_values") or []:
        parts += [str(v.get("value") or "") for v in field.get("values") or []]
    return "\n".join(parts).lower()


@pytest.fixture(scope="session")
def _fake_crm_server():
    yield from serve(FakeCRM())


@pytest.fixture
def fake_crm(_fake_crm_server):
    """The running fake CRM with its default data set, reset (and the lookup cache cleared) for this test."""
    from metrotest_bot.crm import clear_cache

    clear_cache()
    yield from fresh(_fake_crm_server)
    clear_cache()
