"""`flask reindex` and `flask ask` through Flask's CLI runner."""
import json

from metrotest_bot.rag import get_engine


def test_reindex_prints_a_summary(app):
    result = app.test_cli_runner().invoke(args=["reindex"])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Проиндексировано: ") and "фрагментов" in line and line.endswith(" с.")
    with app.app_context():
        assert str(get_engine().passage_count()) in line


def test_reindex_if_needed_keeps_a_persisted_index(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["reindex"])
    result = runner.invoke(args=["reindex", "--if-needed"])
    assert result.exit_code == 0
    assert result.output.startswith("Индекс уже готов")


def test_reindex_reports_an_unusable_kb_file(tmp_path, database_url):
    from tests.support.apps import dispose, make_app

    bad = tmp_path / "kb.txt"
    bad.write_bytes(b"")
    app = make_app(tmp_path / "data", database_url, KB_PATH=bad)
    try:
        result = app.test_cli_runner().invoke(args=["reindex"])
        assert result.exit_code != 0
        assert "пустой" in result.output
    finally:
        dispose(app)


def test_ask_prints_the_spoken_answer(app):
    result = app.test_cli_runner().invoke(args=["ask", "во", "сколько", "вы", "открываетесь"])
    assert result.exit_code == 0, result.output
    assert "8:30" in result.output


def test_ask_json_reads_questions_from_stdin(app):
    result = app.test_cli_runner().invoke(args=["ask", "--json"],
                                          input="почём пресс на две тысячи килоньютон\n\nможно заказать пиццу\n")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [x["question"] for x in lines] == ["почём пресс на две тысячи килоньютон", "можно заказать пиццу"]
    price, pizza = lines
    assert price["answered"] is True and "920 000" in price["answer"]
    # `answer` stays written; `spoken` is what TTS reads (the `text` frames carry it).
    assert "девятисот двадцати тысяч рублей" in price["spoken"] and "920" not in price["spoken"]
    assert price["passages"] and set(price["passages"][0]) >= {"text", "score"}
    scores = [p["score"] for p in price["passages"]]
    assert scores == sorted(scores, reverse=True)
    assert "ПИ-2000" in price["passages"][0]["text"]
    assert price["timings"]["retrieval_ms"] is not None
    assert pizza["answered"] is False and pizza["answer"]
