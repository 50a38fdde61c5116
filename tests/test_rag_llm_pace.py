"""Reading an answer's LLM stream at a pace (LLM_READ_PACE_MS, issue #16): until the first piece is
spoken every chunk is read as it comes (the caller waits on it); after it, the stream is read at most
every LLM_READ_PACE_MS, what arrived meanwhile in one read, so a worker is not woken for every token.
The pieces are the same, and the first comes as early as without a pace.

The real `openai` client of rag/generate.py and the answer's own reader (rag/answer.py) against the
local OpenAI-compatible server streaming a token every 10 ms, in a process patched by gevent as
gunicorn's worker is (only there is the body read off the connection at a pace).
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r'''
from gevent import monkey
monkey.patch_all()
import json, sys, time, types
from config import DEFAULTS
from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import llm_http
from metrotest_bot.rag.answer import Answer

reads = []  # the body's reads off the socket once its chunked framing is read here
real_more = llm_http._more
def more(recv):
    data = real_more(recv)
    reads.append(len(data))
    return data
llm_http._more = more

found = types.SimpleNamespace(answered=True, off_topic=False, screened=False, context=[], query=None)


def run(pace_ms):
    cfg = {**DEFAULTS, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": sys.argv[1], "LLM_READ_PACE_MS": pace_ms}
    del reads[:]
    started = time.monotonic()
    answer = Answer(question="когда вы работаете", found=found, retrieval_ms=0.0, started=started,
                    settings=BotSettings(), caller=None, config=cfg)
    pieces, at, before = [], [], None
    for piece in answer:
        pieces.append(piece)
        at.append(time.monotonic() - started)
        if before is None:
            before = len(reads)
    return {"pace_ms": pace_ms, "pieces": pieces, "at": at, "reads_after_first": len(reads) - before,
            "source": answer.source, "error": answer.error}


# The first answer of a process pays for lazy imports and the connection: a warm-up, not measured.
run(0.0)
print(json.dumps([run(pace) for pace in (0.0, float(sys.argv[2])) * 2]))
'''

ANSWER = ("Мы работаем с понедельника по пятницу. Приезжайте к нам на завод в Екатеринбурге, адрес есть на сайте. "
          "Перед приездом позвоните менеджеру, он закажет пропуск и встретит вас на проходной. "
          "Образцы для испытаний можно привезти с собой.")


# Longer than the first sentence takes to stream (~70 ms), so that a first piece read at the pace shows.
PACE_MS = 250


def _answers(fake, pace_ms: float) -> tuple[list[dict], list[dict]]:
    """Two answers read eagerly and two at the pace, alternated in one process after a warm-up."""
    fake.answer, fake.token_delay = ANSWER, 0.01
    done = subprocess.run([sys.executable, "-c", PROBE, fake.base_url, str(pace_ms)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    return [r for r in runs if r["pace_ms"] == 0], [r for r in runs if r["pace_ms"] == pace_ms]


def test_after_the_first_piece_the_stream_is_read_in_fewer_gulps_with_the_same_pieces(fake_openai):
    eager, paced = _answers(fake_openai, PACE_MS)
    for got in eager + paced:
        assert got["source"] == "llm" and got["error"] is None
        assert len(got["pieces"]) == 4
        assert got["pieces"] == eager[0]["pieces"]
    # ~38 tokens 10 ms apart after the first sentence: read one by one without a pace, a few reads
    # of several with it
    for e, p in zip(eager, paced):
        assert e["reads_after_first"] >= 30
        assert p["reads_after_first"] <= e["reads_after_first"] // 4
    # The first piece is read eagerly; a later piece waits at most one pace for its read. The best of
    # two runs each, so that a moment when the machine is busy elsewhere is not taken for the pace.
    def best(runs, i):
        return min(r["at"][i] for r in runs)
    assert best(paced, 0) < best(eager, 0) + 0.1
    assert best(paced, -1) < best(eager, -1) + PACE_MS / 1000 + 0.1
