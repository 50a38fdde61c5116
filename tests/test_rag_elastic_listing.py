"""Listing a whole Elasticsearch KB index (engine load, the admin's KB page): scroll pages of a
thousand passages, also past Elasticsearch's 10,000-hit result window.

A local HTTP server stands in for Elasticsearch at the network boundary: it serves the search
and scroll APIs over 12,000 passages plus a manifest document and, like Elasticsearch, refuses
from/size paging beyond index.max_result_window. The real-server run of the store contract is in
test_rag_store_contract.py (needs ELASTICSEARCH_URL)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from metrotest_bot.rag.stores import MANIFEST_ID, SCROLL_SIZE, ElasticStore

N_PASSAGES = 12_000
MAX_RESULT_WINDOW = 10_000


def _passage(i):
    return {"_id": f"big:{i}", "_score": 0.0, "_source": {
        "id": f"big:{i}", "content": f"термин{i} пресс", "kind": "passage",
        "text": f"Абзац номер {i}.", "section": f"Раздел {i // 100}", "position": i}}


class FakeElasticsearch(BaseHTTPRequestHandler):
    docs = [_passage(i) for i in range(N_PASSAGES)] + [
        {"_id": MANIFEST_ID, "_score": 0.0, "_source": {"kind": "manifest", "manifest": {"n_passages": N_PASSAGES}}}]
    requests: list = []
    scrolls: dict = {}

    def log_message(self, *args):
        pass

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    @staticmethod
    def _matching(query):
        wanted = [f["term"]["kind"] for f in query.get("bool", {}).get("filter", []) if "term" in f]
        return [d for d in FakeElasticsearch.docs if not wanted or d["_source"].get("kind") == wanted[0]]

    def _page(self, hits, start, size, scroll_id=None):
        out = {"took": 1, "timed_out": False,
               "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
               # like Elasticsearch's default track_total_hits: counted up to 10,000
               "hits": {"total": {"value": min(len(hits), MAX_RESULT_WINDOW),
                                  "relation": "eq" if len(hits) <= MAX_RESULT_WINDOW else "gte"},
                        "hits": hits[start:start + size]}}
        if scroll_id:
            out["_scroll_id"] = scroll_id
        return out

    def do_POST(self):
        url = urlparse(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self._body()
        self.requests.append(("POST", url.path, params, body))
        if url.path.endswith("/_search/scroll") or url.path == "/_search/scroll":
            state = self.scrolls[body["scroll_id"]]
            start = state["next"]
            state["next"] += state["size"]
            return self._reply(200, self._page(state["hits"], start, state["size"], body["scroll_id"]))
        if url.path.endswith("/_search"):
            size = int(params.get("size", body.get("size", 10)))
            start = int(params.get("from", body.get("from", 0)))
            hits = self._matching(body.get("query", {}))
            if "scroll" in params:
                scroll_id = f"scroll-{len(self.scrolls)}"
                self.scrolls[scroll_id] = {"hits": hits, "size": size, "next": size}
                return self._reply(200, self._page(hits, 0, size, scroll_id))
            if start + size > MAX_RESULT_WINDOW:
                return self._reply(400, {"status": 400, "error": {
                    "type": "illegal_argument_exception",
                    "reason": f"Result window is too large, from + size must be less than or equal to: "
                              f"[{MAX_RESULT_WINDOW}] but was [{start + size}]."}})
            return self._reply(200, self._page(hits, start, size))
        return self._reply(404, {"status": 404, "error": {"type": "not_found", "reason": url.path}})

    def do_GET(self):  # cluster info, asked by the haystack store when it initialises
        self.requests.append(("GET", urlparse(self.path).path, {}, {}))
        self._reply(200, {"name": "fake", "cluster_name": "fake", "version": {"number": "8.19.0"},
                          "tagline": "You Know, for Search"})

    def do_HEAD(self):  # indices.exists
        self.send_response(200)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self):
        self.requests.append(("DELETE", urlparse(self.path).path, {}, self._body()))
        self._reply(200, {"succeeded": True, "num_freed": 1})


@pytest.fixture
def fake_es():
    FakeElasticsearch.requests = []
    FakeElasticsearch.scrolls = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeElasticsearch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_listing_reads_every_passage_in_pages_of_a_thousand(fake_es):
    store = ElasticStore(fake_es, "mt", "big")
    docs = store.documents()

    assert len(docs) == N_PASSAGES  # more than the 10,000-hit window from/size paging can reach
    assert len({d.id for d in docs}) == N_PASSAGES and MANIFEST_ID not in {d.id for d in docs}
    by_position = sorted(docs, key=lambda d: d.meta["position"])
    assert by_position[10_500].meta == {"kind": "passage", "text": "Абзац номер 10500.", "section": "Раздел 105",
                                        "position": 10_500}
    assert by_position[10_500].content == "термин10500 пресс"

    reads = [r for r in FakeElasticsearch.requests if r[0] == "POST"]
    assert len(reads) <= N_PASSAGES // SCROLL_SIZE + 2  # not 1,200 requests of ten hits
    _, first_path, first_params, first_body = reads[0]
    assert first_path == "/mt-kb-big/_search" and "scroll" in first_params
    assert int(first_params.get("size", first_body.get("size", 10))) == SCROLL_SIZE
    assert first_body["query"] == {"bool": {"filter": [{"term": {"kind": "passage"}}]}}
    # the scroll context is released once the listing is read
    assert [r[1] for r in FakeElasticsearch.requests if r[0] == "DELETE"] == ["/_search/scroll"]
