"""`flask reindex` and `flask ask`."""
from __future__ import annotations

import json
import sys
import time

import click
from flask.cli import with_appcontext

from .errors import KBError
from .speech import speech_form


def _progress_bar():
    """A click progress bar on a terminal; nothing when output is piped."""
    if not sys.stdout.isatty():
        return None, None
    state = {"bar": None, "done": 0}

    def progress(done, total):
        if state["bar"] is None:
            state["bar"] = click.progressbar(length=total, label="Индексация", show_pos=True)
            state["bar"].__enter__()
        state["bar"].update(done - state["done"])
        state["done"] = done

    def finish():
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)

    return progress, finish


@click.command("reindex")
@click.option("--if-needed", is_flag=True, help="Only build when no persisted index of the KB in force exists.")
@with_appcontext
def reindex_command(if_needed):
    """Rebuild the KB index (from KB_PATH, or the KB version in force) and the call-transcript index."""
    from ..search.outbox import reindex_transcripts_step
    from . import get_engine

    # The other derived index first: call transcripts (SQL lemma table or Elasticsearch).
    reindex_transcripts_step(if_needed, *_progress_bar())
    engine = get_engine()
    progress, finish = _progress_bar()
    started = time.monotonic()
    try:
        index, built = engine.reindex(progress=progress, if_needed=if_needed)
    except KBError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        if finish:
            finish()
    seconds = time.monotonic() - started
    verb = "Проиндексировано" if built else "Индекс уже готов"
    click.echo(f"{verb}: {index.count} фрагментов из {index.target.source.name} "
               f"({engine.backend_name()}, индекс {index.target.name}) за {seconds:.2f} с.")


@click.command("ask")
@click.argument("question", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per question.")
@click.option("--dialogue", is_flag=True,
              help="The questions are turns of one call (each argument, or each stdin line): "
                   "follow-ups are resolved against the earlier turns, as in a call.")
@with_appcontext
def ask_command(question, as_json, dialogue):
    """Answer a question as the bot would say it. Without QUESTION, reads one per line from stdin."""
    from ..bot_settings import get_bot_settings
    from . import get_engine
    from .dialogue import Dialogue

    engine = get_engine()
    settings = get_bot_settings()
    if question:
        questions = list(question) if dialogue else [" ".join(question)]
    else:
        questions = (line.strip() for line in sys.stdin)
    memory = Dialogue() if dialogue else None
    for q in questions:
        if not q:
            continue
        stream = engine.answer(q, settings, dialogue=memory)
        try:
            text = stream.text()
        finally:
            stream.close()
        if memory is not None:
            memory.add(q, text, stream.query)
        if as_json:
            click.echo(json.dumps({
                "question": q,
                "answer": text,
                "spoken": speech_form(text),  # what TTS reads: the `text` frames carry this form
                "answered": stream.answered,
                "source": stream.source,
                "passages": [{"text": p.text, "score": p.score, "section": p.section} for p in stream.passages],
                "timings": stream.timings.to_dict(),
            }, ensure_ascii=False))
        else:
            click.echo(text)
