"""A big KB loaded aside must not hold the GIL for long (issue #16: every call of the worker stalls):
the documents file is parsed a piece at a time, and the load runs with the collector paused.
`python -m bench bigkb` measures the effect on other calls; these hold the parts to their contract."""
import gc
import json
import sys

import pytest

from metrotest_bot.rag.engine import LOAD_SWITCH_INTERVAL, collector_paused
from metrotest_bot.rag.stores import read_json_array


@pytest.mark.parametrize("items", [[], [{"id": "a", "meta": {"text": "Доставка, «бесплатно» [1]"}}],
                                   [{"n": i, "s": "ё" * (i % 7), "l": [i, None, True]} for i in range(3000)]])
def test_read_json_array_reads_what_json_dumps_wrote(tmp_path, items):
    path = tmp_path / "documents.json"
    # Pieces of 1 MiB are decoded one by one: a long file splits characters across them.
    path.write_text(json.dumps(items * (1 if len(items) < 100 else 200), ensure_ascii=False), encoding="utf-8")
    assert read_json_array(path) == json.loads(path.read_text(encoding="utf-8"))


def test_read_json_array_reads_pretty_printed_files_too(tmp_path):
    path = tmp_path / "documents.json"
    path.write_text(json.dumps([{"a": 1}, [2, 3], "x"], indent=2), encoding="utf-8")
    assert read_json_array(path) == [{"a": 1}, [2, 3], "x"]


@pytest.mark.parametrize("text", ["", "{}", '[{"a": 1}, {"a": 2}', '[{"a": 1} {"a": 2}]x'])
def test_read_json_array_refuses_what_is_not_a_whole_array(tmp_path, text):
    path = tmp_path / "documents.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError):
        read_json_array(path)


def test_a_load_aside_runs_with_the_collector_paused_and_what_it_made_frozen():
    seen = {}
    interval = sys.getswitchinterval()
    frozen_before = gc.get_freeze_count()

    def load():
        seen["enabled"] = gc.isenabled()
        seen["interval"] = sys.getswitchinterval()
        return [{"passage": i} for i in range(1000)]

    try:
        made = collector_paused(load)
        # The interpreter keeps the interval in whole microseconds (0.0001 reads back as 9.99…e-05).
        assert seen == {"enabled": False, "interval": pytest.approx(min(interval, LOAD_SWITCH_INTERVAL), abs=1e-6)}
        assert gc.isenabled() and sys.getswitchinterval() == interval
        assert gc.get_freeze_count() >= frozen_before + len(made)  # never scanned by a full collection
    finally:
        gc.unfreeze()  # this test process's own objects: back to the collector


def test_a_retired_index_is_freed_even_when_it_was_frozen(tmp_path, database_url):
    """A loaded index is frozen (gc.freeze: never scanned); the collector never frees frozen cycles,
    and a pipeline's graph is one. Retired once out of use, its statistics and store are freed anyway."""
    import weakref

    from metrotest_bot.rag import get_engine
    from tests.support.apps import dispose, make_app

    app = make_app(tmp_path / "data", database_url)
    try:
        with app.app_context():
            engine = get_engine()
            old, _ = engine.reindex()
            stats, store = weakref.ref(old.stats), weakref.ref(old.store)
            gc.freeze()
            try:
                engine.reindex()  # a new index in force; the old one is retired later
                old.retire()
                del old
                gc.collect()
                assert stats() is None and store() is None
            finally:
                gc.unfreeze()
    finally:
        dispose(app)
