"""`flask ask`, and the KB half of `flask reindex` (the command itself is metrotest_bot/cli.py)."""
from __future__ import annotations

import json
import sys
import time

import click
from flask.cli import with_appcontext

from ..database import needs_schema
from .errors import KBError
from .speech import speech_form


def reindex_kb_step(if_needed: bool = False, progress=None, finish=None) -> None:
    """The KB half of `flask reindex` (metrotest_bot/cli.py): build the index, then say what was done."""
    from . import get_engine

    engine = get_engine()
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
@needs_schema
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
            memory.add(q, text, stream.query, stream.passages)
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
