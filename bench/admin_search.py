"""Admin panel at scale: transcript search and CSV export over 1,000 and 100,000 calls.

Each size gets a fresh SQLite database (the default deployment) filled with
generated calls of 10 turns (realistic Russian questions and KB-like answers
from a vocabulary, plus a random order number per call), inserted in bulk
with Core executemany (bypassing the ORM, as a migration or import would);
then `flask reindex-transcripts`' code path rebuilds the index.

Measured per size:
- search p50/p95 over several queries (common words, a pair of words, a rare
  order number, a word not said at all): the search interface plus snippets,
  as the list page calls it, and the whole list page through the test client;
- CSV export of the whole log through the test client: time, size, and the
  growth of resident memory while streaming it (sampled at every chunk).
Targets: search p95 at 100k <= 3 x at 1k (an index, not a scan); export
memory flat (does not grow with the log).
"""
from __future__ import annotations

import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

TITLE = "Admin panel: transcript search and CSV export"
SIZES = (1_000, 100_000)
TURNS = 10
REPEATS = 30
BATCH = 5_000

CITIES = ["Казань", "Москва", "Екатеринбург", "Пермь", "Челябинск", "Уфа", "Новосибирск", "Самара", "Тюмень",
          "Омск", "Нижний Новгород", "Красноярск"]
CITIES_PREP = {"Казань": "Казани", "Москва": "Москве", "Екатеринбург": "Екатеринбурге", "Пермь": "Перми",
               "Челябинск": "Челябинске", "Уфа": "Уфе", "Новосибирск": "Новосибирске", "Самара": "Самаре",
               "Тюмень": "Тюмени", "Омск": "Омске", "Нижний Новгород": "Нижнем Новгороде",
               "Красноярск": "Красноярске"}
PRODUCTS = ["разрывную машину", "твердомер", "маятниковый копер", "гидравлический пресс", "экстензометр",
            "климатическую камеру", "машину для испытаний на кручение", "универсальную испытательную машину",
            "испытательный стенд", "пресс для бетона"]
QUESTIONS = [
    "Здравствуйте, сколько стоит {p}?", "Есть ли доставка в {c}?", "Какой срок поставки на {p}?",
    "Вы делаете поверку оборудования в {cp}?", "Какая гарантия на {p}?", "Можно заказать {p} с монтажом в {cp}?",
    "Есть ли у вас сервисный центр в {cp}?", "Подскажите, пожалуйста, цену на {p} с доставкой в {c}",
    "Я по заказу номер {n}, когда будет отгрузка?", "Нужен счёт на {p}, куда отправить реквизиты?",
    "Проводите ли вы обучение персонала работе на оборудовании?", "А можно приехать посмотреть {p}?",
]
ANSWERS = [
    "Стоимость зависит от комплектации; менеджер подготовит коммерческое предложение в течение дня.",
    "Доставляем по всей России транспортными компаниями, до {cp} обычно три–пять рабочих дней.",
    "Срок поставки серийного оборудования — от двух до шести недель после оплаты.",
    "Поверку и калибровку выполняем с выездом инженера, в том числе в {cp}.",
    "Гарантия на оборудование — двенадцать месяцев, на гидравлику — восемнадцать месяцев.",
    "Монтаж и пусконаладку выполняют наши инженеры; обучение операторов входит в стоимость.",
    "Сервисное обслуживание организовано по всей стране; выезд инженера согласуем заранее.",
    "Наш офис работает с понедельника по пятницу с 8:30 до 17:30 по екатеринбургскому времени.",
    "Реквизиты и счёт отправим на электронную почту; укажите, пожалуйста, ИНН организации.",
    "К сожалению, у меня нет точного ответа на этот вопрос. Могу соединить вас с сотрудником.",
]
GREETING = "Здравствуйте! Вы позвонили в компанию «Метротест». Я голосовой помощник. Чем могу помочь?"
GOODBYE = "Спасибо за звонок! Всего доброго."


def _texts(rng: random.Random, order_no: int) -> list[tuple[str, str, dict]]:
    out = [("bot", GREETING, {"kind": "greeting", "source": "phrase"})]
    for _ in range(4):
        c = rng.choice(CITIES)
        q = rng.choice(QUESTIONS).format(p=rng.choice(PRODUCTS), c=c, cp=CITIES_PREP[c], n=order_no)
        out.append(("caller", q, {"kind": "speech"}))
        a = rng.choice(ANSWERS).format(cp=CITIES_PREP[c])
        refusal = a.startswith("К сожалению")
        out.append(("bot", a, {"kind": "answer", "answered": not refusal, "source": "refusal" if refusal else "offline",
                               "first_piece_ms": rng.uniform(150, 900), "retrieval_ms": rng.uniform(5, 60),
                               "total_ms": rng.uniform(900, 4000)}))
    out.append(("bot", GOODBYE, {"kind": "goodbye", "source": "phrase"}))
    return out


def generate(app, n_calls: int, seed: int = 7) -> dict:
    """Bulk-insert n_calls calls of TURNS turns; returns facts the queries need."""
    from sqlalchemy import insert

    from metrotest_bot.extensions import db
    from metrotest_bot.models import Call, Turn

    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    span = timedelta(days=365).total_seconds()
    starts = sorted(rng.uniform(0, span) for _ in range(n_calls))
    order_numbers = rng.sample(range(10_000, 99_999), min(n_calls, 89_000)) + list(range(100_000, 100_000 + n_calls - 89_000))
    turn_id, said_order = 0, None
    with app.app_context():
        for lo in range(0, n_calls, BATCH):
            calls, turns = [], []
            for i in range(lo, min(lo + BATCH, n_calls)):
                started = now - timedelta(seconds=span - starts[i])
                spec = _texts(rng, order_numbers[i])
                if said_order is None and i >= n_calls // 2 and any(str(order_numbers[i]) in t for _, t, _ in spec):
                    said_order = order_numbers[i]  # a rare word: said in one call only
                fp = [m["first_piece_ms"] for _, _, m in spec if "first_piece_ms" in m]
                calls.append(dict(id=i + 1, caller=f"+7912{rng.randrange(10**7):07d}", dialled="+73432000000",
                                  started_at=started, ended_at=started + timedelta(seconds=95), duration_s=95.0,
                                  outcome=rng.choice(["completed", "completed", "hangup", "transferred"]),
                                  n_turns=TURNS, n_interrupted=0,
                                  n_unanswered=sum(1 for _, _, m in spec if m.get("answered") is False),
                                  first_piece_ms_sum=sum(fp), first_piece_n=len(fp)))
                for seq, (role, text, meta) in enumerate(spec):
                    turn_id += 1
                    turns.append(dict(id=turn_id, call_id=i + 1, seq=seq, role=role, text=text,
                                      created_at=started + timedelta(seconds=9 * seq), spoken_text=None,
                                      interrupted=False, **{k: meta.get(k) for k in (
                                          "kind", "answered", "source", "first_piece_ms", "retrieval_ms", "total_ms")}))
            db.session.execute(insert(Call), calls)
            db.session.execute(insert(Turn), turns)
            db.session.commit()
    return {"order_no": said_order}


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _pct(values, p) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _signed_in_client(app):
    from tests.support.admin_data import make_admin, sign_in

    make_admin(app)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    return client


def measure(size: int) -> dict:
    from config import TestConfig
    from metrotest_bot import create_app
    from metrotest_bot.extensions import db
    from metrotest_bot.search import DateRange, get_index, snippets
    from metrotest_bot.search.sql import TranscriptTerm

    with tempfile.TemporaryDirectory(prefix="bench-admin-") as tmp:
        app = create_app(TestConfig(DATA_DIR=Path(tmp), SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/bench.db"))
        with app.app_context():
            db.create_all()
        t0 = time.monotonic()
        facts = generate(app, size)
        gen_s = time.monotonic() - t0
        t0 = time.monotonic()
        with app.app_context():
            get_index().reindex_all()
            postings = db.session.query(TranscriptTerm).count()
        index_s = time.monotonic() - t0

        queries = ["казани", "доставку твердомера", "поверка в Перми", "гарантии на пресс",
                   f"заказ {facts['order_no']}", "луноход"]
        client = _signed_in_client(app)
        api, page, hits = [], [], {}
        with app.app_context():
            for q in queries:  # warm: lemma cache, SQLite page cache
                found = get_index().search(q, DateRange(), 50, 0)
                hits[q] = found.total if found.total is not None else f"≥{len(found.call_ids)}, not counted"
            for _ in range(REPEATS):
                for q in queries:
                    t = time.perf_counter()
                    found = get_index().search(q, DateRange(), 50, 0)
                    snippets(q, found.call_ids)
                    api.append((time.perf_counter() - t) * 1000)
                    db.session.rollback()
        for _ in range(REPEATS):
            for q in queries:
                t = time.perf_counter()
                response = client.get("/logs-ui/", query_string={"q": q})
                assert response.status_code == 200
                page.append((time.perf_counter() - t) * 1000)

        # For comparison: what a scan (LIKE over every turn) costs for the rare word.
        from sqlalchemy import select

        from metrotest_bot.models import Turn

        with app.app_context():
            t = time.perf_counter()
            db.session.execute(select(Turn.call_id).where(Turn.text.like(f"%{facts['order_no']}%")).distinct()).all()
            scan_ms = (time.perf_counter() - t) * 1000

        base = _rss()
        peak, n_bytes, n_rows = base, 0, 0
        t0 = time.monotonic()
        response = client.get("/logs-ui/export.csv", buffered=False)
        for chunk in response.response:
            n_bytes += len(chunk)
            n_rows += chunk.count(b"\r\n")
            peak = max(peak, _rss())
        response.close()
        export_s = time.monotonic() - t0
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return {"size": size, "gen_s": gen_s, "index_s": index_s, "postings": postings, "hits": hits,
            "api_p50": _pct(api, 50), "api_p95": _pct(api, 95), "page_p50": _pct(page, 50), "page_p95": _pct(page, 95),
            "scan_ms": scan_ms, "export_s": export_s, "export_mb": n_bytes / 1e6, "export_rows": n_rows - 1,
            "rss_growth_mb": (peak - base) / 1e6, "rss_mb": peak / 1e6}


def run(sizes=SIZES) -> str:
    results = []
    for size in sizes:
        print(f"[admin_search] {size} calls…", file=sys.stderr, flush=True)
        results.append(measure(size))
        print(f"[admin_search] {results[-1]}", file=sys.stderr, flush=True)
    lines = [
        f"SQLite, {TURNS} turns per call, {REPEATS} runs of each of {len(results[0]['hits'])} queries per size; "
        "generated data inserted with Core executemany, then the index rebuilt by `reindex_all()`.",
        "",
        "| calls | turns | generate, s | index rebuild, s | postings | search p50 / p95, ms | list page p50 / p95, ms "
        "| export, s | export, MB | export rows | RSS growth while exporting, MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['size'] * TURNS:,} | {r['gen_s']:.1f} | {r['index_s']:.1f} | {r['postings']:,} "
            f"| {r['api_p50']:.1f} / {r['api_p95']:.1f} | {r['page_p50']:.1f} / {r['page_p95']:.1f} "
            f"| {r['export_s']:.1f} | {r['export_mb']:.1f} | {r['export_rows']:,} | {r['rss_growth_mb']:.1f} |"
            .replace(",", "\u202f"))
    if len(results) >= 2:
        small, big = results[0], results[-1]
        ratio = big["api_p95"] / small["api_p95"]
        page_ratio = big["page_p95"] / small["page_p95"]
        mem_ok = big["rss_growth_mb"] <= max(2 * small["rss_growth_mb"], small["rss_growth_mb"] + 20)
        lines += [
            "",
            f"- Search p95 at {big['size']:,} vs {small['size']:,} calls: ×{ratio:.2f} "
            f"(list page ×{page_ratio:.2f}); target ≤ ×3: **{'met' if ratio <= 3 else 'NOT met'}**.",
            f"- Export memory: RSS grew {small['rss_growth_mb']:.1f} MB for {small['export_rows']:,} rows and "
            f"{big['rss_growth_mb']:.1f} MB for {big['export_rows']:,} rows "
            f"({big['export_mb']:.0f} MB of CSV): **{'flat' if mem_ok else 'NOT flat'}**.",
            f"- For comparison, a LIKE scan of every turn for the rare order number takes {small['scan_ms']:.1f} ms "
            f"at {small['size']:,} and {big['scan_ms']:.1f} ms at {big['size']:,} calls.",
            "- Matches per query at the largest size: "
            + "; ".join(f"«{q}» {n}" for q, n in big["hits"].items()) + ".",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sizes = tuple(int(s) for s in sys.argv[1:]) or SIZES
    print(run(sizes))
