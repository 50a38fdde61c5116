"""Bounds on reading a KB file (issue #13): size, text, PDF pages, PDF inflated content, time.

A KB file comes from an admin's upload (or KB_PATH). A small PDF can hide
pages that share one Flate stream inflating to tens of megabytes, which
pypdf would inflate and parse again for every page: minutes of CPU and a
gigabyte of memory for 40 KB uploaded. Each limit here turns such a file
into a KBError with a Russian message for the panel, before the work.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from pypdf.errors import LimitReachedError

from config import DEFAULTS

from .errors import KBError

MB = 1024 * 1024


def _size(n: int) -> str:
    """A size as the admin reads it: «32 МБ», «1,5 МБ», «64 КБ»."""
    if n < MB:
        return f"{max(1, round(n / 1024))} КБ"
    value = n / MB
    return (f"{value:.1f}".rstrip("0").rstrip(".") if value < 10 else f"{value:.0f}").replace(".", ",") + " МБ"


@dataclass(frozen=True)
class IngestLimits:
    # Defaults are the declared settings' (config.SETTINGS), for a file read outside an app.
    max_bytes: int = DEFAULTS["KB_MAX_UPLOAD_BYTES"]  # the file itself, any format
    max_text_chars: int = DEFAULTS["KB_MAX_TEXT_CHARS"]  # text after decoding or PDF extraction
    pdf_max_pages: int = DEFAULTS["KB_PDF_MAX_PAGES"]
    pdf_max_inflated_bytes: int = DEFAULTS["KB_PDF_MAX_INFLATED_BYTES"]  # page content streams inflated, summed
    max_seconds: float = DEFAULTS["KB_INDEX_TIMEOUT"]  # reading and indexing one file

    @classmethod
    def from_config(cls, config) -> "IngestLimits":
        return cls(
            max_bytes=int(config["KB_MAX_UPLOAD_BYTES"]),
            max_text_chars=int(config["KB_MAX_TEXT_CHARS"]),
            pdf_max_pages=int(config["KB_PDF_MAX_PAGES"]),
            pdf_max_inflated_bytes=int(config["KB_PDF_MAX_INFLATED_BYTES"]),
            max_seconds=float(config["KB_INDEX_TIMEOUT"]),
        )

    # -- checks, each raising KBError with the admin's message ---------------------------------

    def check_size(self, n_bytes: int) -> None:
        if n_bytes > self.max_bytes:
            raise KBError(f"Файл слишком большой: можно загрузить не больше {_size(self.max_bytes)}.")

    def check_text(self, n_chars: int) -> None:
        if n_chars > self.max_text_chars:
            raise KBError(f"В файле слишком много текста: больше {self.max_text_chars:,} знаков"
                          .replace(",", " ") + ". Разделите его на части.")

    def check_pages(self, n_pages: int) -> None:
        if n_pages > self.pdf_max_pages:
            raise KBError(f"В PDF слишком много страниц ({n_pages}): можно не больше {self.pdf_max_pages}. "
                          f"Разделите файл на части.")

    def inflated_error(self) -> KBError:
        return KBError(f"PDF не принят: его страницы после распаковки занимают больше "
                       f"{_size(self.pdf_max_inflated_bytes)}. Так бывает с повреждёнными или намеренно "
                       f"«раздутыми» файлами. Сохраните документ в PDF заново или загрузите его текст (.txt).")

    @staticmethod
    def too_complex_error() -> KBError:
        return KBError("PDF не принят: он слишком сложен для разбора (превышены ограничения на объём данных "
                       "в нём). Сохраните документ в PDF заново или загрузите его текст (.txt).")

    def pypdf_overrides(self) -> dict:
        """pypdf's own decoding limits (pypdf.apply_configuration), no looser than ours."""
        cap = self.pdf_max_inflated_bytes
        return {
            "zlib_maximum_output_length": cap,
            "lzw_maximum_output_length": cap,
            "run_length_maximum_output_length": cap,
            "brotli_maximum_output_length": cap,
            "array_based_stream_maximum_output_length": cap,
            "maximum_declared_stream_length": cap,
            # A broken stream is retried byte by byte in Python: keep that short.
            "zlib_maximum_recovery_input_length": min(MB, cap),
        }

    def budget(self) -> "TimeBudget":
        return TimeBudget(self.max_seconds)


class TimeBudget:
    """The time one file may take, checked between steps (a page, ten passages)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise KBError(f"Файл обрабатывался дольше {self.seconds:g} с и не принят. "
                          f"Разделите его на части или загрузите текст (.txt).")


def pdf_inflated_size(reader, limits: IngestLimits, budget: TimeBudget) -> int:
    """Bytes of every page's content streams (forms included) once inflated, counted per page as
    text extraction reads them. Raises the limit's KBError as soon as the sum is over."""
    total = 0
    for page in reader.pages:
        budget.check()
        seen: set[int] = set()
        pending = [page]
        while pending:  # the page, then the form XObjects it draws (each once per page)
            holder = pending.pop().get_object()
            contents = holder.get("/Contents") if holder is page else holder
            for stream in _streams(contents):
                if id(stream) in seen:
                    continue
                seen.add(id(stream))
                try:
                    total += len(stream.get_data())  # inflated by pypdf, which stops at its configured cap
                except LimitReachedError:
                    raise limits.inflated_error() from None
                if total > limits.pdf_max_inflated_bytes:
                    raise limits.inflated_error()
            for form in _forms(holder):
                if id(form) not in seen:
                    pending.append(form)
    return total


def _streams(contents) -> list:
    if contents is None:
        return []
    contents = contents.get_object()
    if hasattr(contents, "get_data"):
        return [contents]
    if isinstance(contents, list):
        return [c.get_object() for c in contents if hasattr(c.get_object(), "get_data")]
    return []


def _forms(holder) -> list:
    try:
        xobjects = holder.get("/Resources", {}).get_object().get("/XObject", {}).get_object()
    except AttributeError:
        return []
    forms = []
    for ref in xobjects.values():
        obj = ref.get_object()
        if hasattr(obj, "get") and obj.get("/Subtype") == "/Form":
            forms.append(obj)
    return forms
