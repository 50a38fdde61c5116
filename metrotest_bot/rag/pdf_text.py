"""PDF → text lines with the document's structure: headings marked, page furniture dropped.

pypdf's text visitor reports each run of text with its font and size. A line
set clearly larger than the body text, or a short line all in bold, is a
heading: it comes out marked «=== Title ===», so ingest.split_sections makes
it a section as it does for .txt dumps. Running headers and footers (the same
line on most pages, or a small-print line at a page's top or bottom) and page
numbers are dropped; visual lines are glued back into paragraphs.
"""
from __future__ import annotations

import io
import math
import re
from collections import Counter
from dataclasses import dataclass

from .errors import KBError
from .upload_limits import IngestLimits, TimeBudget, pdf_inflated_size

HEADING_SCALE = 1.2  # a heading's font is at least this much larger than the body's
MAX_HEADING_CHARS = 120
MAX_BOLD_HEADING_CHARS = 80


@dataclass
class Line:
    text: str
    size: float  # the largest font size on the line (0 when the PDF does not say)
    bold: bool  # every run of the line is in a bold font


def _font_size(font_size, cm, tm) -> float:
    # The size set by Tf, scaled by the text and current matrices (some producers use Tf 1 and scale).
    scale = math.hypot(tm[2], tm[3]) * math.hypot(cm[2], cm[3]) if tm and cm else 1.0
    return round((font_size or 0) * (scale or 1.0), 1)


def _is_bold(font_dict) -> bool:
    name = str((font_dict or {}).get("/BaseFont", ""))
    return bool(re.search(r"bold|black|heavy|semibold|-b\b", name, re.IGNORECASE))


def page_lines(page) -> list[Line]:
    """A page's lines with their font size and weight, in reading order."""
    lines: list[Line] = []
    current: list[tuple[str, float, bool]] = []

    def flush():
        text = "".join(t for t, _, _ in current)
        if text.strip():
            runs = [(s, b) for t, s, b in current if t.strip()]
            lines.append(Line(text=text, size=max(s for s, _ in runs), bold=all(b for _, b in runs)))
        current.clear()

    def visit(text, cm, tm, font_dict, font_size):
        size, bold = _font_size(font_size, cm, tm), _is_bold(font_dict)
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                flush()
            if part:
                current.append((part, size, bold))

    page.extract_text(visitor_text=visit)
    flush()
    return lines


def read_pdf_lines(data: bytes, limits: IngestLimits | None = None,
                   budget: TimeBudget | None = None) -> list[list[Line]]:
    """The lines of each page of a PDF, within `limits` (pages, inflated content, text, time).
    Raises KBError for a damaged, locked or too heavy file."""
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError, PdfReadError

    limits = limits or IngestLimits()
    budget = budget or limits.budget()
    try:
        with apply_configuration(**limits.pypdf_overrides()):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    reader.decrypt("")
                except Exception as exc:
                    raise KBError("PDF защищён паролем: снимите защиту и загрузите снова.") from exc
            limits.check_pages(len(reader.pages))
            pdf_inflated_size(reader, limits, budget)  # before any text is extracted
            pages, n_chars = [], 0
            for page in reader.pages:
                budget.check()
                pages.append(page_lines(page))
                n_chars += sum(len(line.text) for line in pages[-1])
                limits.check_text(n_chars)
            return pages
    except KBError:
        raise
    except LimitReachedError as exc:
        raise limits.too_complex_error() from exc
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise KBError("Не удалось прочитать PDF: файл повреждён или это не PDF.") from exc


def body_size(pages: list[list[Line]]) -> float:
    """The font size most of the text is set in."""
    counts: Counter = Counter()
    for lines in pages:
        for line in lines:
            counts[line.size] += len(line.text.strip())
    return counts.most_common(1)[0][0] if counts else 0.0


def _shape(text: str) -> str:
    return re.sub(r"\d+", "#", re.sub(r"\s+", " ", text.strip()))


def drop_furniture(pages: list[list[Line]], body: float) -> list[list[Line]]:
    """Running headers and footers: a line on at least half the pages (page numbers differ: digits are
    ignored), or a small-print line at a page's top or bottom."""
    repeated: set[str] = set()
    if len(pages) >= 2:
        counts = Counter()
        for lines in pages:
            counts.update({_shape(line.text) for line in lines})
        repeated = {shape for shape, n in counts.items() if n >= max(2, (len(pages) + 1) // 2)}
    out = []
    for lines in pages:
        kept = [line for line in lines if _shape(line.text) not in repeated]
        while kept and body and kept[0].size < body and len(kept[0].text.strip()) <= 100:
            kept.pop(0)
        while kept and body and kept[-1].size < body and len(kept[-1].text.strip()) <= 100:
            kept.pop()
        out.append(kept)
    return out


def is_heading(line: Line, body: float) -> bool:
    text = line.text.strip()
    if not text or len(text) > MAX_HEADING_CHARS or not re.search(r"[A-Za-zА-ЯЁа-яё]", text):
        return False
    if body and line.size >= body * HEADING_SCALE:
        return True
    # A bold line of body size: a heading when short and not a sentence.
    return (line.bold and len(text) <= MAX_BOLD_HEADING_CHARS and not re.search(r"[.,;:!?]$", text)
            and not text[0].islower())


def glue_lines(lines: list[str]) -> list[str]:
    """PDF text is broken into visual lines: glue a line starting in lower case (or with a digit) onto
    the previous one unless that one ended a sentence; «пере-» + «нос» loses its hyphen."""
    out: list[str] = []
    for line in lines:
        s = re.sub(r"\s+", " ", line).strip()
        if not s:
            out.append("")
            continue
        heading = s.startswith("=== ")
        if (out and out[-1] and not heading and not out[-1].startswith("=== ")
                and not re.search(r"[.!?:]$", out[-1]) and (s[0].islower() or s[0].isdigit())):
            out[-1] = (out[-1][:-1] if out[-1].endswith("-") and s[0].islower() else out[-1] + " ") + s
        else:
            out.append(s)
    return out


def pdf_text_lines(data: bytes, limits: IngestLimits | None = None, budget: TimeBudget | None = None) -> list[str]:
    """A PDF's text as lines for ingest.split_sections: headings marked «=== … ===», furniture gone."""
    pages = read_pdf_lines(data, limits, budget)
    body = body_size(pages)
    out: list[str] = []
    for lines in drop_furniture(pages, body):
        raw: list[str] = []
        previous: Line | None = None  # the line before, when it was a heading
        for line in lines:
            if is_heading(line, body):
                title = re.sub(r"\s+", " ", line.text).strip()
                if previous is not None and previous.size == line.size and line.size >= body * HEADING_SCALE:
                    raw[-1] = f"=== {raw[-1][4:-4]} {title} ==="  # a title wrapped over two lines
                else:
                    raw.append(f"=== {title} ===")
                previous = line
            else:
                raw.append(line.text)
                previous = None
        out.extend(glue_lines(raw))
        out.append("")
    return out
