"""Kibana saved objects and docker-compose.yml agree with the Elasticsearch mappings we create.

Kibana itself is not run here; these checks make a renamed field or index
fail loudly instead of leaving an empty dashboard.
"""
import json
import re
from pathlib import Path

import pytest
import yaml

from metrotest_bot.search.documents import CALLS_MAPPINGS, TURNS_MAPPINGS
from metrotest_bot.search.elastic import TranscriptStore

ROOT = Path(__file__).resolve().parents[1]
NDJSON = sorted((ROOT / "kibana").glob("*.ndjson"))
ALIASES = TranscriptStore(client=None, prefix="metrotest")
MAPPINGS = {ALIASES.turns_alias: TURNS_MAPPINGS, ALIASES.calls_alias: CALLS_MAPPINGS}


def load_objects() -> list[dict]:
    objects = []
    for path in NDJSON:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                obj = json.loads(line)  # one object per line, as the _import API wants
                obj["_where"] = f"{path.name}:{n}"
                objects.append(obj)
    return objects


OBJECTS = load_objects()
BY_KEY = {(o["type"], o["id"]): o for o in OBJECTS}


def field_type(mappings: dict, name: str) -> str | None:
    """The mapped type of a field, sub-fields ("question.keyword") included."""
    props = mappings["properties"]
    if name in props:
        return props[name]["type"]
    base, _, sub = name.partition(".")
    return props.get(base, {}).get("fields", {}).get(sub, {}).get("type")


def data_view_mappings(obj, ref_name) -> dict:
    (ref,) = [r for r in obj["references"] if r["name"] == ref_name]
    view = BY_KEY[("index-pattern", ref["id"])]
    return MAPPINGS[view["attributes"]["title"]]


def kql_fields(query: str) -> list[str]:
    return re.findall(r"([\w.@]+)\s*:", query)


def of_type(kind):
    return [pytest.param(o, id=o["id"]) for o in OBJECTS if o["type"] == kind]


def test_objects_are_well_formed_and_references_resolve():
    assert NDJSON, "kibana/*.ndjson is missing"
    assert len(BY_KEY) == len(OBJECTS), "duplicate saved-object ids"
    kinds = {o["type"] for o in OBJECTS}
    assert {"index-pattern", "search", "lens", "dashboard"} <= kinds
    for obj in OBJECTS:
        assert obj["attributes"]["title"] and obj.get("coreMigrationVersion", "").startswith("8.")
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in BY_KEY, f"{obj['_where']}: dangling reference {ref}"


@pytest.mark.parametrize("view", of_type("index-pattern"))
def test_data_views_cover_our_aliases_with_a_time_field(view):
    attrs = view["attributes"]
    assert attrs["title"] in MAPPINGS, f"{attrs['title']} is not one of our index aliases"
    assert field_type(MAPPINGS[attrs["title"]], attrs["timeFieldName"]) == "date"


@pytest.mark.parametrize("search", of_type("search"))
def test_saved_searches_use_existing_fields(search):
    mappings = data_view_mappings(search, "kibanaSavedObjectMeta.searchSourceJSON.index")
    source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["indexRefName"] == "kibanaSavedObjectMeta.searchSourceJSON.index"
    for name in search["attributes"]["columns"] + kql_fields(source["query"]["query"]):
        assert field_type(mappings, name), f"{search['id']}: no field {name}"


@pytest.mark.parametrize("lens", of_type("lens"))
def test_lens_columns_aggregate_fields_of_the_right_type(lens):
    state = lens["attributes"]["state"]
    layers = state["datasourceStates"]["formBased"]["layers"]
    for layer_id, layer in layers.items():
        mappings = data_view_mappings(lens, f"indexpattern-datasource-layer-{layer_id}")
        assert set(layer["columnOrder"]) == set(layer["columns"])
        for column in layer["columns"].values():
            op, field = column["operationType"], column["sourceField"]
            if op == "count":
                assert field == "___records___"
            elif op == "terms":
                assert field_type(mappings, field) in ("keyword", "boolean", "long", "integer"), field
            elif op == "date_histogram":
                assert field_type(mappings, field) == "date", field
            else:
                assert field_type(mappings, field), field
        for name in kql_fields(state["query"]["query"]):
            assert field_type(mappings, name), f"{lens['id']}: query uses missing field {name}"


def test_dashboard_panels_match_references():
    (dashboard,) = [o for o in OBJECTS if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: r for r in dashboard["references"]}
    assert len(panels) >= 3
    for panel in panels:
        ref = refs[panel["panelRefName"]]
        assert ref["type"] == panel["type"] and panel["gridData"]["i"] == panel["panelIndex"]
    titles = {BY_KEY[(r["type"], r["id"])]["attributes"]["title"] for r in refs.values()}
    assert {"Звонки по дням", "Исходы звонков", "Частые вопросы без ответа"} <= titles


def test_docker_compose_runs_a_single_node_elasticsearch_8_and_kibana():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    es, kibana = services["elasticsearch"], services["kibana"]
    assert "discovery.type=single-node" in es["environment"]
    assert "xpack.security.enabled=false" in es["environment"]
    version = re.search(r":-(\d+)\.", es["image"]).group(1)
    assert version == "8" and es["image"].split(":")[-1] == kibana["image"].split(":")[-1]
    assert "ELASTICSEARCH_HOSTS=http://elasticsearch:9200" in kibana["environment"]
    assert all(p.startswith("127.0.0.1:") for s in (es, kibana) for p in s["ports"])  # security is off
    assert "./kibana:/saved-objects:ro" in services["kibana-import"]["volumes"]
