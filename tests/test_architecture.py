"""The import graph of metrotest_bot/ points one way (issue #12).

Read from the source (ast), every import counted, at module level or inside a
function (a lazy import is still a dependency):

- no import cycles between modules, anywhere in the package (search/elastic.py ⇄
  search/outbox.py was one). A blueprint's view modules may import `bp` from
  their package, which imports them at its end: Flask's pattern, not a cycle of
  meaning;
- layers, lower never importing higher:

      base (config, extensions, models, database, text helpers, phones, settings)
        → rag, crm → search, reports → voice → admin, health → cli → the app factory

  Units of one layer do not import each other either (rag ⇸ crm, search ⇸ reports),
  except inside the base layer, which only has to be free of cycles.

A new module must be given a layer in LAYERS. A violation that cannot be fixed at
once goes into ALLOWED with the issue that removes it, so the list can only shrink.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "metrotest_bot"

# Layer of each unit (a top-level module, or a subpackage with all its modules). Higher may import lower.
LAYERS = {
    # base: no knowledge of calls, answers or search
    "extensions": 0, "models": 0, "database": 0, "timeutil": 0, "filelock": 0, "morph": 0,
    "phones": 0, "outcomes": 0, "bot_settings": 0, "logredact": 0, "security_headers": 0, "background": 0,
    # the two sources: the knowledge base and answers; the CRM
    "rag": 1, "crm": 1,
    # what is derived from the call log: transcript search; the post-call report
    "search": 2, "reports": 2,
    # the call
    "voice": 3,
    # the panel and the health check
    "admin": 4, "health": 4,
    # the app: the CLI (`flask reindex` spans rag and search), then the factory that wires everything
    "cli": 5, "": 6,
}
BASE = 0

# (importing unit, imported unit) pairs tolerated for now; each names its issue. Only ever shrinks.
ALLOWED: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / PACKAGE).rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        if "migrations" in rel.parts:
            continue  # Alembic scripts, run by Alembic
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, dict[str, set[str]]]:
    """module -> {imported module: names imported from it}."""
    modules = _modules()
    graph: dict[str, dict[str, set[str]]] = {m: defaultdict(set) for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = parts[:len(parts) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules:
                        graph[module][f"{target}.{alias.name}"].add("*")
                    elif target in modules:
                        graph[module][target].add(alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        graph[module][alias.name].add("*")
        graph[module].pop(module, None)
    return graph


def unit(module: str) -> str:
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def _is_blueprint_registration(module: str, target: str, names: set[str]) -> bool:
    return module.rpartition(".")[0] == target and names == {"bp"}


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    edges = {m: [t for t, names in targets.items() if not _is_blueprint_registration(m, t, names)]
             for m, targets in graph.items()}
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_unit_has_a_layer():
    units = {unit(m) for m in _modules()}
    assert units - set(LAYERS) == set(), "give the new module or package a layer in LAYERS"


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_lower_layers_never_import_higher_ones():
    violations = set()
    for module, targets in import_graph().items():
        for target in targets:
            a, b = unit(module), unit(target)
            if a == b or LAYERS[a] == LAYERS[b] == BASE:
                continue
            if LAYERS[a] <= LAYERS[b]:
                violations.add((a or PACKAGE, b or PACKAGE, f"{module} -> {target}"))
    new = sorted(v for v in violations if v[:2] not in ALLOWED)
    assert new == [], "an import against the layers: " + "; ".join(v[2] for v in new)
    stale = ALLOWED - {v[:2] for v in violations}
    assert not stale, f"fixed: remove {sorted(stale)} from ALLOWED"


def test_the_crossings_of_issue_12_stay_closed():
    """The named crossings, each its own assertion for a readable failure."""
    graph = import_graph()

    def imports(prefix_from: str, prefix_to: str) -> list[str]:
        return sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith(prefix_from)
                      for t in targets if t == prefix_to or t.startswith(prefix_to + "."))

    assert imports("metrotest_bot.search", "metrotest_bot.crm") == []  # phones are metrotest_bot/phones.py
    assert imports("metrotest_bot.search", "metrotest_bot.voice") == []  # the write lock is database.py's
    assert imports("metrotest_bot.rag", "metrotest_bot.search") == []  # `flask reindex` is metrotest_bot/cli.py
    assert imports("metrotest_bot.crm", "metrotest_bot.rag") == []  # caller_context is voice/caller.py's
    assert imports("metrotest_bot.reports", "metrotest_bot.voice") == []
    assert imports("metrotest_bot.search.elastic", "metrotest_bot.search.outbox") != []
    assert imports("metrotest_bot.search.outbox", "metrotest_bot.search.elastic") == []
    # search's modules never import their package's facade (search/__init__.py)
    assert [m for m, t in ((m, t) for m, ts in graph.items() for t in ts)
            if m.startswith("metrotest_bot.search.") and t == "metrotest_bot.search"] == []
    # transcript indexing is the app factory's, not the panel's
    assert "metrotest_bot.search" in graph["metrotest_bot"]
    assert "metrotest_bot.search" not in graph["metrotest_bot.admin"]


def test_the_checker_sees_lazy_imports_and_cycles():
    """The rules above would pass vacuously if the parser missed imports inside functions."""
    graph = import_graph()
    assert "metrotest_bot.search.elastic" in graph["metrotest_bot.search.backend"]  # imported inside _build
    assert cycles({"a.x": {"a.y": {"*"}}, "a.y": {"a.x": {"f"}}}) == [["a.x", "a.y"]]
    assert cycles({"a": {"a.v": {"*"}}, "a.v": {"a": {"bp"}}}) == []  # a blueprint's views
