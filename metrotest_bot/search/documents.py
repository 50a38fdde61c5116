"""What the transcript indexes of Elasticsearch hold: index settings, mappings, documents.

Built from SQL rows (models.Call, models.Turn) by the outbox and by a rebuild;
no Elasticsearch client here, so the writer (outbox.py) and the index
(elastic.py) both import this module and not each other. ES_ERRORS are the
failures of an Elasticsearch request that mean "try later" (or "ask SQL").
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import TransportError
from elasticsearch import ApiError

from ..models import Call, Turn
from ..timeutil import as_utc
from .sql import turn_search_text

ANALYSIS = {
    # «ёлка» and «елка» are one word to a Russian reader; the stemmer knows only е.
    "char_filter": {"ru_yo": {"type": "mapping", "mappings": ["ё => е", "Ё => Е"]}},
    "filter": {
        "ru_stop": {"type": "stop", "stopwords": "_russian_"},
        "ru_stemmer": {"type": "stemmer", "language": "russian"},
    },
    "analyzer": {
        "ru_text": {"type": "custom", "tokenizer": "standard", "char_filter": ["ru_yo"],
                    "filter": ["lowercase", "ru_stop", "ru_stemmer"]},
    },
    "normalizer": {"ru_lower": {"type": "custom", "char_filter": ["ru_yo"], "filter": ["lowercase"]}},
}
INDEX_SETTINGS = {
    "number_of_shards": 1,
    # A replica where there is a second node; green on the single-node docker-compose.
    "auto_expand_replicas": "0-1",
    "analysis": ANALYSIS,
}

TEXT = {"type": "text", "analyzer": "ru_text"}
# Text that Kibana also counts by value (top questions, names).
TEXT_AND_KEYWORD = {**TEXT, "fields": {"keyword": {"type": "keyword", "normalizer": "ru_lower", "ignore_above": 512}}}
KEYWORD = {"type": "keyword"}
DATE = {"type": "date"}

CALL_FIELDS = {
    "call_id": {"type": "long"},
    "vox_call_id": KEYWORD,
    "vox_session_id": KEYWORD,
    "caller": KEYWORD,
    "dialled": KEYWORD,
    "caller_name": TEXT_AND_KEYWORD,
    "caller_company": TEXT_AND_KEYWORD,
    "started_at": DATE,
    "ended_at": DATE,
    "duration_s": {"type": "float"},
    "outcome": KEYWORD,
    "end_reason": {"type": "keyword", "ignore_above": 256},
    "transferred_to": KEYWORD,
}
TURNS_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "@timestamp": DATE,
        "turn_id": {"type": "long"},
        "seq": {"type": "integer"},
        "role": KEYWORD,
        "kind": KEYWORD,
        "text": TEXT,
        "planned_text": TEXT,
        "question": TEXT_AND_KEYWORD,
        "answered": {"type": "boolean"},
        "interrupted": {"type": "boolean"},
        "source": KEYWORD,
        "confidence": {"type": "float"},
        "retrieval_ms": {"type": "float"},
        "llm_first_token_ms": {"type": "float"},
        "first_piece_ms": {"type": "float"},
        "total_ms": {"type": "float"},
        **CALL_FIELDS,
    },
}
CALLS_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "@timestamp": DATE,
        **CALL_FIELDS,
        "transcript": TEXT,
        "unanswered_questions": TEXT_AND_KEYWORD,
        "n_turns": {"type": "integer"},
        "n_interrupted": {"type": "integer"},
        "n_unanswered": {"type": "integer"},
        "mean_first_piece_ms": {"type": "float"},
        "recording_url": {"type": "keyword", "index": False},
    },
}


class SearchUnavailable(Exception):
    """Elasticsearch did not answer, or answered with an error."""


def es_date(dt: datetime | None) -> str | None:
    """UTC with fixed width, so documents and query bounds compare the same everywhere."""
    dt = as_utc(dt)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt else None


def call_fields(call: Call) -> dict:
    return {
        "call_id": call.id, "vox_call_id": call.vox_call_id, "vox_session_id": call.vox_session_id,
        "caller": call.caller, "dialled": call.dialled, "caller_name": call.caller_name,
        "caller_company": call.caller_company, "started_at": es_date(call.started_at),
        "ended_at": es_date(call.ended_at), "duration_s": call.duration_s, "outcome": call.outcome,
        "end_reason": call.end_reason, "transferred_to": call.transferred_to,
    }


# The call's columns that turn documents carry: a change re-indexes every turn of the call.
CALL_COLUMNS_IN_TURNS = frozenset(k for k in CALL_FIELDS if k != "call_id") | {"id"}


def turn_document(turn: Turn, call: Call) -> dict:
    return {
        "@timestamp": es_date(turn.created_at), "turn_id": turn.id, "seq": turn.seq, "role": turn.role,
        "kind": turn.kind, "text": turn_search_text(turn.text, turn.spoken_text), "planned_text": turn.planned_text,
        "question": turn.question, "answered": turn.answered, "interrupted": bool(turn.interrupted),
        "source": turn.source, "confidence": turn.confidence, "retrieval_ms": turn.retrieval_ms,
        "llm_first_token_ms": turn.llm_first_token_ms, "first_piece_ms": turn.first_piece_ms,
        "total_ms": turn.total_ms, **call_fields(call),
    }


def call_document(call: Call, turns: Iterable[Turn]) -> dict:
    turns = sorted(turns, key=lambda t: (t.seq, t.id))
    return {
        "@timestamp": es_date(call.started_at), **call_fields(call),
        "transcript": "\n".join(filter(None, (turn_search_text(t.text, t.spoken_text) for t in turns))),
        "unanswered_questions": [t.question for t in turns if t.answered is False and t.question],
        "n_turns": call.n_turns, "n_interrupted": call.n_interrupted, "n_unanswered": call.n_unanswered,
        "mean_first_piece_ms": call.mean_first_piece_ms, "recording_url": call.recording_url,
    }


# Failures of an Elasticsearch request: the outbox retries later, the panel asks SQL meanwhile.
ES_ERRORS = (ApiError, TransportError, TransportConnectionError, SearchUnavailable)
