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

cfg = {**DEFAULTS, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": sys.argv[1], "LLM_READ_PACE_MS": float(sys.argv[2])}
found = types.SimpleNamespace(answered=True, off_topic=False, screened=False, context=[], query=None)
started = time.monotonic()
answer = Answer(question="когда вы работаете", found=found, retrieval_ms=0.0, started=started,
                settings=BotSettings(), caller=None, config=cfg)
pieces, at, before = [], [], None
for piece in answer:
    pieces.append(piece)
    at.append(time.monotonic() - started)
    if before is None:
        before = len(reads)
print(json.dumps({"pieces": pieces, "at": at, "reads_after_first": len(reads) - before, "source": answer.source,
                  "error": answer.error}))
'''

ANSWER = ("Мы работаем с понедельника по пятницу. Приезжайте к нам на завод в Екатеринбурге, адрес есть на сайте. "
          "Перед приездом позвоните менеджеру, он закажет пропуск и встретит вас на проходной. "
          "Образцы для испытаний можно привезти с собой.")


def _answer(fake, pace_ms: float) -> dict:
    fake.answer, fake.token_delay = ANSWER, 0.01
    done = subprocess.run([sys.executable, "-c", PROBE, fake.base_url, str(pace_ms)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_the_first_piece_the_stream_is_read_in_fewer_gulps_with_the_same_pieces(fake_openai):
    eager = _answer(fake_openai, 0)
    paced = _answer(fake_openai, 100)
    for got in (eager, paced):
        assert got["source"] == "llm" and got["error"] is None
        assert len(got["pieces"]) == 4
    assert paced["pieces"] == eager["pieces"]
    # ~38 tokens 10 ms apart after the first sentence: read one by one without a pace, a few reads
    # of several with it
    assert eager["reads_after_first"] >= 30
    assert paced["reads_after_first"] <= eager["reads_after_first"] // 4
    # The first piece is read eagerly (each run's first request also opens the connection).
    assert paced["at"][0] < eager["at"][0] + 0.15
    # A later piece waits at most one pace for its read.
    assert paced["at"][-1] < eager["at"][-1] + 0.25
