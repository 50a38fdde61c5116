"""A local HTTP server speaking the part of Elasticsearch's REST API our code uses.

For the official `elasticsearch` client, at the network boundary: every
response carries `X-Elastic-Product: Elasticsearch` (the client refuses a
server without it) and the compatibility media type; GET / answers version
info. Implemented: HEAD/PUT/DELETE index, aliases (GET /_alias, POST
/_aliases), POST _bulk (NDJSON, per-item results, `errors`), _refresh,
_count, GET _doc, _delete_by_query and a minimal _search (match_all, match,
multi_match, term(s), range, exists, bool; sort, from/size, collapse, cardinality and
terms aggs, highlight by exact token). No analysis: `match` compares
lower-cased tokens, so morphology is tested against a real Elasticsearch only.

Modes, switched per test on the running server:
- "ok";
- "unavailable": every request answers 503 with an Elasticsearch-style error;
- "refuse": the port is closed (connection refused) and open connections
  are dropped; `set_mode("ok")` listens again on the same port.
"""
from __future__ import annotations

import json
import re
import socket
import threading
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from metrotest_bot.search import get_index

from .apps import dispose, make_app
from .http_fake import HTTPFake, QuietHandler, serve

JSON_TYPE = "application/vnd.elasticsearch+json;compatible-with=8"
VERSION = "8.19.0"
TOKEN_RE = re.compile(r"\w+", re.UNICODE)


def _tokens(text) -> list[str]:
    return TOKEN_RE.findall(str(text).lower()) if text is not None else []


def _get(source: dict, field: str):
    field = field.removesuffix(".keyword").removesuffix(".raw")
    value = source
    for part in field.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _values(source, field) -> list:
    value = _get(source, field)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _cmp_key(value):
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


class QueryError(Exception):
    pass


def matches(query: dict | None, source: dict) -> bool:
    if not query:
        return True
    (kind, body), = query.items()
    if kind == "match_all":
        return True
    if kind == "match":
        (field, spec), = body.items()
        spec = spec if isinstance(spec, dict) else {"query": spec}
        wanted = _tokens(spec["query"])
        have = {t for v in _values(source, field) for t in _tokens(v)}
        if spec.get("operator", "or").lower() == "and":
            return bool(wanted) and all(t in have for t in wanted)
        return any(t in have for t in wanted)
    if kind == "multi_match":  # best_fields: the query matches in one of the fields
        spec = {k: v for k, v in body.items() if k != "fields"}
        return any(matches({"match": {field: spec}}, source) for field in body["fields"])
    if kind == "term":
        (field, spec), = body.items()
        value = spec["value"] if isinstance(spec, dict) else spec
        return value in _values(source, field)
    if kind == "terms":
        (field, wanted), = ((k, v) for k, v in body.items() if k != "boost")
        return any(v in wanted for v in _values(source, field))
    if kind == "exists":
        return bool(_values(source, body["field"]))
    if kind == "range":
        (field, spec), = body.items()
        vals = _values(source, field)
        if not vals:
            return False
        v = _cmp_key(vals[0])
        ops = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b}
        return all(ops[op](v, _cmp_key(bound)) for op, bound in spec.items() if op in ops)
    if kind == "bool":
        def as_list(x):
            return x if isinstance(x, list) else ([x] if x else [])
        if not all(matches(q, source) for q in as_list(body.get("must")) + as_list(body.get("filter"))):
            return False
        if any(matches(q, source) for q in as_list(body.get("must_not"))):
            return False
        should = as_list(body.get("should"))
        if should:
            need = int(body.get("minimum_should_match", 0 if (body.get("must") or body.get("filter")) else 1))
            return sum(matches(q, source) for q in should) >= need
        return True
    raise QueryError(f"query [{kind}] is not supported by the fake")


def _match_tokens(node) -> set[str]:
    """Tokens of every `match` clause anywhere in a query, for highlighting."""
    out: set[str] = set()
    if isinstance(node, dict):
        for kind, body in node.items():
            if kind == "match" and isinstance(body, dict):
                for spec in body.values():
                    out |= set(_tokens(spec["query"] if isinstance(spec, dict) else spec))
            else:
                out |= _match_tokens(body)
    elif isinstance(node, list):
        for sub in node:
            out |= _match_tokens(sub)
    return out


class FakeElasticsearch(HTTPFake):
    def __init__(self):
        self.mode = "ok"
        self.indices: dict[str, dict] = {}  # name -> {"settings", "mappings", "docs": {id: source}, "aliases"}
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.bodies: list[tuple[str, str, object]] = []  # (method, path, parsed body)
        self.lock = threading.RLock()
        self._conns: set[socket.socket] = set()
        super().__init__()

    # -- lifecycle -------------------------------------------------------
    def stop(self):
        """Close the listener and drop open connections (the "refuse" mode)."""
        super().stop()
        with self.lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def set_mode(self, mode: str):
        assert mode in ("ok", "unavailable", "refuse"), mode
        if mode == "refuse" and self.mode != "refuse":
            self.mode = mode
            self.stop()
        elif mode != "refuse" and self.mode == "refuse":
            self.mode = mode
            self.start()
        else:
            self.mode = mode

    # -- state helpers ---------------------------------------------------
    def resolve(self, name: str) -> list[str]:
        """Concrete indices behind a name, alias or comma list."""
        out = []
        for part in name.split(","):
            if part in self.indices:
                out.append(part)
            else:
                out += [n for n, ix in self.indices.items() if part in ix["aliases"]]
                if part.endswith("*"):
                    out += [n for n in self.indices if n.startswith(part[:-1])]
        return sorted(set(out))

    def docs(self, name: str) -> dict:
        """All documents behind name (id -> source)."""
        with self.lock:
            out = {}
            for ix in self.resolve(name):
                out.update(self.indices[ix]["docs"])
            return out

    def aliases(self, index: str) -> set:
        return set(self.indices[index]["aliases"])

    def count_requests(self, method: str, path_part: str) -> int:
        return sum(1 for m, p in self.requests if m == method and path_part in p)

    # -- HTTP ------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            def setup(self):
                super().setup()
                with fake.lock:
                    fake._conns.add(self.connection)

            def finish(self):
                with fake.lock:
                    fake._conns.discard(self.connection)
                super().finish()

            def _reply(self, status: int, body=None, head=False):
                data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Type", JSON_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def _handle(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if fake.mode == "refuse":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with fake.lock:
                    fake.requests.append((method, path))
                if fake.mode == "unavailable":
                    return self._reply(503, {
                        "error": {"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered];"},
                        "status": 503,
                    }, head=method == "HEAD")
                try:
                    status, body = fake.route(method, path, params, raw)
                except QueryError as exc:
                    status, body = 400, {"error": {"type": "parsing_exception", "reason": str(exc)}, "status": 400}
                self._reply(status, body, head=method == "HEAD")

            def do_GET(self):
                self._handle("GET")

            def do_HEAD(self):
                self._handle("HEAD")

            def do_PUT(self):
                self._handle("PUT")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        return Handler

    @staticmethod
    def _error(status, type_, reason, index=None):
        err = {"type": type_, "reason": reason}
        if index:
            err["index"] = index
        return status, {"error": {"root_cause": [err], **err}, "status": status}

    def route(self, method, path, params, raw):
        body = None
        if raw and "_bulk" not in path:
            body = json.loads(raw)
        with self.lock:
            self.bodies.append((method, path, body if "_bulk" not in path else raw.decode()))
        segs = [s for s in path.split("/") if s]
        with self.lock:
            if not segs:
                return 200, {"name": "fake", "cluster_name": "fake", "cluster_uuid": "fake",
                             "version": {"number": VERSION, "build_flavor": "default",
                                         "lucene_version": "9.12.0",
                                         "minimum_wire_compatibility_version": "7.17.0",
                                         "minimum_index_compatibility_version": "7.0.0"},
                             "tagline": "You Know, for Search"}
            if segs[0] == "_bulk":
                return self._bulk(None, raw, params)
            if segs[0] == "_aliases" and method == "POST":
                return self._aliases_actions(body)
            if segs[0] == "_alias":
                return self._get_alias(segs[1] if len(segs) > 1 else None)
            name = segs[0]
            rest = segs[1:]
            if not rest:
                if method == "HEAD":
                    return (200 if self.resolve(name) else 404), None
                if method == "PUT":
                    return self._create(name, body or {})
                if method == "DELETE":
                    found = self.resolve(name)
                    if not found and params.get("ignore_unavailable") == "true":
                        return 200, {"acknowledged": True}
                    if not found:
                        return self._error(404, "index_not_found_exception", f"no such index [{name}]", name)
                    for ix in found:
                        del self.indices[ix]
                    return 200, {"acknowledged": True}
                if method == "GET":
                    found = self.resolve(name)
                    if not found:
                        return self._error(404, "index_not_found_exception", f"no such index [{name}]", name)
                    return 200, {ix: {"aliases": {a: {} for a in self.indices[ix]["aliases"]},
                                      "mappings": self.indices[ix]["mappings"],
                                      "settings": self.indices[ix]["settings"]} for ix in found}
            op = rest[0]
            if op == "_bulk":
                return self._bulk(name, raw, params)
            found = self.resolve(name)
            if not found:
                return self._error(404, "index_not_found_exception", f"no such index [{name}]", name)
            if op == "_settings" and method == "PUT":
                for ix in found:
                    self.indices[ix]["settings"].setdefault("index", {}).update((body or {}).get("index", body or {}))
                return 200, {"acknowledged": True}
            if op == "_refresh":
                return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
            if op == "_alias" and method == "GET":
                return self._get_alias(rest[1] if len(rest) > 1 else None, found)
            if op == "_doc" and len(rest) == 2:
                for ix in found:
                    if rest[1] in self.indices[ix]["docs"]:
                        return 200, {"_index": ix, "_id": rest[1], "found": True, "_source": self.indices[ix]["docs"][rest[1]]}
                return 404, {"_index": found[0], "_id": rest[1], "found": False}
            if op == "_count":
                query = (body or {}).get("query")
                n = sum(1 for ix in found for src in self.indices[ix]["docs"].values() if matches(query, src))
                return 200, {"count": n, "_shards": {"total": 1, "successful": 1, "failed": 0}}
            if op == "_delete_by_query":
                query = (body or {}).get("query")
                deleted = 0
                for ix in found:
                    docs = self.indices[ix]["docs"]
                    for doc_id in [i for i, src in docs.items() if matches(query, src)]:
                        del docs[doc_id]
                        deleted += 1
                return 200, {"took": 1, "timed_out": False, "total": deleted, "deleted": deleted, "failures": []}
            if op == "_search":
                return self._search(found, body or {})
        return self._error(400, "illegal_argument_exception", f"the fake does not implement {method} {path}")

    def _create(self, name, body):
        if name in self.indices or self.resolve(name):
            return self._error(400, "resource_already_exists_exception", f"index [{name}] already exists", name)
        self.indices[name] = {"settings": body.get("settings", {}), "mappings": body.get("mappings", {}),
                              "docs": {}, "aliases": set((body.get("aliases") or {}).keys())}
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _get_alias(self, alias, indices=None):
        out = {}
        for ix in indices or self.indices:
            names = [a for a in self.indices[ix]["aliases"] if alias is None or a == alias]
            if names or (alias is None and indices):
                out[ix] = {"aliases": {a: {} for a in names}}
        if alias and not out:
            return 404, {"error": f"alias [{alias}] missing", "status": 404}
        return 200, out

    def _aliases_actions(self, body):
        for action in body["actions"]:
            (kind, spec), = action.items()
            targets = [spec["index"]] if "index" in spec else spec.get("indices", [])
            for ix in targets:
                if ix not in self.indices:
                    return self._error(404, "index_not_found_exception", f"no such index [{ix}]", ix)
            for ix in targets:
                if kind == "add":
                    self.indices[ix]["aliases"].add(spec["alias"])
                elif kind == "remove":
                    self.indices[ix]["aliases"].discard(spec["alias"])
                elif kind == "remove_index":
                    del self.indices[ix]
        return 200, {"acknowledged": True}

    def _bulk(self, default_index, raw, params):
        lines = [ln for ln in raw.decode().split("\n") if ln.strip()]
        items, errors, i = [], False, 0
        while i < len(lines):
            action = json.loads(lines[i])
            i += 1
            (kind, meta), = action.items()
            index_name = meta.get("_index", default_index)
            doc_id = str(meta.get("_id"))
            source = None
            if kind in ("index", "create", "update"):
                source = json.loads(lines[i])
                i += 1
            targets = self.resolve(index_name)
            if kind == "delete":
                if not targets:
                    items.append({kind: {"_index": index_name, "_id": doc_id, "status": 404, "result": "not_found"}})
                    continue
                ix = targets[0]
                found = self.indices[ix]["docs"].pop(doc_id, None) is not None
                items.append({kind: {"_index": ix, "_id": doc_id, "status": 200 if found else 404,
                                     "result": "deleted" if found else "not_found"}})
                continue
            if not targets:
                # Elasticsearch would auto-create; our code always creates its index first, so say so loudly.
                errors = True
                items.append({kind: {"_index": index_name, "_id": doc_id, "status": 404, "error": {
                    "type": "index_not_found_exception", "reason": f"no such index [{index_name}]"}}})
                continue
            ix = targets[0]
            docs = self.indices[ix]["docs"]
            if kind == "create" and doc_id in docs:
                errors = True
                items.append({kind: {"_index": ix, "_id": doc_id, "status": 409, "error": {
                    "type": "version_conflict_engine_exception", "reason": "document already exists"}}})
                continue
            if kind == "update":
                if doc_id not in docs and "upsert" not in source and not source.get("doc_as_upsert"):
                    errors = True
                    items.append({kind: {"_index": ix, "_id": doc_id, "status": 404, "error": {
                        "type": "document_missing_exception", "reason": "document missing"}}})
                    continue
                docs[doc_id] = {**docs.get(doc_id, source.get("upsert", {})), **source.get("doc", {})}
                items.append({kind: {"_index": ix, "_id": doc_id, "status": 200, "result": "updated"}})
                continue
            created = doc_id not in docs
            docs[doc_id] = source
            items.append({kind: {"_index": ix, "_id": doc_id, "status": 201 if created else 200,
                                 "result": "created" if created else "updated"}})
        return 200, {"took": 1, "errors": errors, "items": items}

    def _search(self, indices, body):
        query = body.get("query")
        hits = [(ix, doc_id, src) for ix in indices for doc_id, src in self.indices[ix]["docs"].items()
                if matches(query, src)]
        for spec in reversed(body.get("sort") or []):
            if isinstance(spec, str):
                field, order = (spec.split(":") + ["asc"])[:2]
            else:
                (field, order), = spec.items()
                order = order.get("order", "asc") if isinstance(order, dict) else order
            if field == "_score":
                continue
            hits.sort(key=lambda h, f=field: _cmp_key(_get(h[2], f) if _get(h[2], f) is not None else ""),
                      reverse=order == "desc")
        sort_fields = []
        for spec in body.get("sort") or []:
            if isinstance(spec, str):
                field, order = (spec.split(":") + ["asc"])[:2]
            else:
                (field, order), = spec.items()
                order = order.get("order", "asc") if isinstance(order, dict) else order
            sort_fields.append((field, order))
        if body.get("search_after"):
            after = body["search_after"]

            def is_after(src):
                for (field, order), bound in zip(sort_fields, after):
                    v, b = _cmp_key(_get(src, field)), _cmp_key(bound)
                    if v != b:
                        return v < b if order == "desc" else v > b
                return False
            hits = [h for h in hits if is_after(h[2])]
        collapse = (body.get("collapse") or {}).get("field")
        if collapse:
            seen, kept = set(), []
            for h in hits:
                key = _get(h[2], collapse)
                if key not in seen:
                    seen.add(key)
                    kept.append(h)
            hits = kept
        total = len(hits)
        start, size = int(body.get("from", 0)), int(body.get("size", 10))
        page = hits[start:start + size]
        highlight = body.get("highlight")
        words = _match_tokens(query)
        out_hits = []
        for ix, doc_id, src in page:
            wanted = body.get("_source", True)
            shown = src if wanted is True else ({k: v for k, v in src.items() if k in wanted} if isinstance(wanted, list) else None)
            hit = {"_index": ix, "_id": doc_id, "_score": 1.0}
            if shown is not None:
                hit["_source"] = shown
            if sort_fields:
                hit["sort"] = [_get(src, f) for f, _ in sort_fields]
            if collapse:
                hit["fields"] = {collapse: [_get(src, collapse)]}
            if highlight:
                pre = (highlight.get("pre_tags") or ["<em>"])[0]
                post = (highlight.get("post_tags") or ["</em>"])[0]
                hl = {}
                for field in highlight.get("fields", {}):
                    value = _get(src, field)
                    if isinstance(value, str) and any(t in words for t in _tokens(value)):
                        hl[field] = [TOKEN_RE.sub(lambda m: f"{pre}{m.group()}{post}" if m.group().lower() in words else m.group(), value)]
                if hl:
                    hit["highlight"] = hl
            out_hits.append(hit)
        result = {"took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                  "hits": {"total": {"value": total, "relation": "eq"}, "max_score": 1.0 if out_hits else None, "hits": out_hits}}
        aggs = body.get("aggs") or body.get("aggregations")
        if aggs:
            all_matching = [src for ix in indices for src in self.indices[ix]["docs"].values() if matches(query, src)]
            result["aggregations"] = {}
            for name, spec in aggs.items():
                if "cardinality" in spec:
                    field = spec["cardinality"]["field"]
                    result["aggregations"][name] = {"value": len({v for s in all_matching for v in _values(s, field)})}
                elif "terms" in spec:
                    field = spec["terms"]["field"]
                    counts: dict = {}
                    for s in all_matching:
                        for v in _values(s, field):
                            counts[v] = counts.get(v, 0) + 1
                    buckets = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: spec["terms"].get("size", 10)]
                    result["aggregations"][name] = {"buckets": [{"key": k, "doc_count": n} for k, n in buckets]}
                else:
                    raise QueryError(f"aggregation {list(spec)} is not supported by the fake")
        return 200, result


@pytest.fixture
def fake_elasticsearch():
    yield from serve(FakeElasticsearch())


def elastic_app(data_dir, database_url, es_url, prefix="mt", **overrides):
    """An app whose transcript search is the Elasticsearch at es_url, with short timeouts and retries."""
    return make_app(data_dir, database_url, ELASTICSEARCH_URL=es_url, ELASTICSEARCH_PREFIX=prefix,
                    ELASTICSEARCH_TIMEOUT=2.0, SEARCH_OUTBOX_RETRY_MAX=0.2, SEARCH_OUTBOX_POLL=0.5, **overrides)


def stop_elastic_app(app):
    """Stop the app's search outbox worker, then dispose of it."""
    get_index(app).outbox.stop()
    dispose(app)


@pytest.fixture
def es_app(tmp_path, database_url, fake_elasticsearch):
    """An app per test whose transcript search is the fake (prefix "mt")."""
    app = elastic_app(tmp_path / "data", database_url, fake_elasticsearch.url)
    yield app
    stop_elastic_app(app)
