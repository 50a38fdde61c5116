"""A big KB switched in is loaded aside: calls keep the KB in force meanwhile and never wait for the load."""
from metrotest_bot.rag import engine as engine_module
from metrotest_bot.rag import get_engine
from metrotest_bot.rag.versions import activate_version, build_version
from tests.support.apps import dispose, make_app
from tests.test_rag_engine import NEW_KB, _version, answer_text


def test_a_big_kb_loads_aside_while_the_old_one_answers(tmp_path, database_url, monkeypatch):
    app = make_app(tmp_path / "data", database_url, SHARED_STATE_TTL=0)
    try:
        with app.app_context():
            assert "8:30" in answer_text("во сколько вы открываетесь")
            upload = tmp_path / "new.txt"
            upload.write_text(NEW_KB, encoding="utf-8")
            version = _version(upload, upload.name).id
            build_version(version, upload)
            # Every index counts as big here: it must be loaded aside, not in the request.
            monkeypatch.setattr(engine_module, "INLINE_LOAD_MAX", 0)
            loads = []
            real_load = engine_module.Engine._load

            def slow_load(self, target):
                loads.append(target.name)
                return real_load(self, target)

            monkeypatch.setattr(engine_module.Engine, "_load", slow_load)
            activate_version(version)
            engine = get_engine()
            # The request that notices the switch is answered by the KB loaded so far...
            assert "8:30" in answer_text("во сколько вы открываетесь")
            engine.wait_builds()
            # ...and the new KB is in force once its load, done aside, is over.
            assert loads == [f"v{version}"]
            assert "9:15" in answer_text("во сколько вы открываетесь")
    finally:
        dispose(app)
