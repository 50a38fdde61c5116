"""Tables and lists → sentences a caller can be read.

A Markdown table row spoken as written is «ПИ-500 | от 640 000 рублей»: each
row becomes a sentence of its own («ПИ-500 — от 640 000 рублей.»), the header
row naming the values where a cell alone would not say what it is
(«ПИ-500: нагрузка — 500 кН, цена — от 640 000 рублей.»). List items become
sentences; a short list after a lead line ending in «:» becomes one sentence
with it («Мы выпускаем: прессы, копры, твердомеры.»).
"""
from __future__ import annotations

import re

_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_HEADER_UNIT = re.compile(r"^(?P<name>.+?),\s*(?P<unit>[^\s,]{1,6})$")  # «Нагрузка, кН»
# An item has words: «- 3 -» is a page number, «* * *» a separator.
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+(?P<text>\S.*[A-Za-zА-ЯЁа-яё].*)$")
_SETEXT = re.compile(r"^\s*(=+|-+)\s*$")
SHORT_ITEM = 80  # items up to this long join their lead line as one sentence


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _sentence(text: str) -> str:
    text = re.sub(r"\s*[;,]\s*$", "", text.strip())
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if re.search(r"[.!?…]$", text) else text + "."


def _label(header: str) -> str:
    # «Цена» → «цена», but an abbreviation («НДС») keeps its capitals.
    return header if header[:2].isupper() else header[:1].lower() + header[1:]


def _labelled(name: str, value: str) -> str:
    """«Нагрузка, кН» and «500» → «нагрузка — 500 кН»: the unit goes where it is read, after the number."""
    if not name:
        return value
    m = _HEADER_UNIT.match(name)
    if m and re.fullmatch(r"[\d\s.,–-]+", value):
        return f"{_label(m.group('name'))} — {value} {m.group('unit')}"
    return f"{_label(name)} — {value}"


def row_sentence(cells: list[str], header: list[str] | None) -> str:
    if not any(cells):
        return ""
    first, rest = cells[0], cells[1:]
    names = (header or [])[1:] + [""] * len(rest)
    if len(rest) == 1 and (re.search(r"[A-Za-zА-ЯЁа-яё]", rest[0]) or not names[0]):
        return _sentence(f"{first} — {rest[0]}" if rest[0] else first)  # «ПИ-500 — от 640 000 рублей.»
    parts = [_labelled(name, value) for name, value in zip(names, rest) if value]
    if not parts:
        return _sentence(first)
    return _sentence(f"{first}: {', '.join(parts)}" if first else ", ".join(parts))


def table_sentences(rows: list[str]) -> list[str]:
    """The lines of one table (header, rule, rows) → one sentence per data row."""
    header = None
    body = rows
    if len(rows) >= 2 and _TABLE_RULE.match(rows[1]):
        header, body = _cells(rows[0]), rows[2:]
    body = [r for r in body if not _TABLE_RULE.match(r)]
    return [s for s in (row_sentence(_cells(r), header) for r in body) if s]


def bare_table_end(lines: list[str], i: int) -> int:
    """Where a table in plain text («РН-150 | 12 500 руб. | 3 дня», with or without outer pipes, a rule
    line under the header or not) that starts at line i ends, or i when none does: two or more lines of the
    same number (two or more) of |-separated cells, numbers in all its rows but the header. A menu bar is
    one line of words («Главная | Каталог | Контакты»), with outer pipes or not."""
    width = len(_cells(lines[i])) if "|" in lines[i] and not _TABLE_RULE.match(lines[i]) else 0
    if width < 2:
        return i
    j = i
    while j < len(lines) and "|" in lines[j] and (len(_cells(lines[j])) == width or _TABLE_RULE.match(lines[j])):
        j += 1
    rows = [row for row in lines[i:j] if not _TABLE_RULE.match(row)]
    with_numbers = sum(bool(re.search(r"\d", row)) for row in rows)
    return j if len(rows) >= 2 and with_numbers >= len(rows) - 1 and with_numbers else i


def bare_table_sentences(rows: list[str]) -> list[str]:
    """One sentence per row; a first row without numbers is the header naming the others' cells."""
    rows = [row for row in rows if not _TABLE_RULE.match(row)]
    header = None
    if not re.search(r"\d", rows[0]):
        header, rows = _cells(rows[0]), rows[1:]
    return [s for s in (row_sentence(_cells(r), header) for r in rows) if s]


def list_sentences(lead: str | None, items: list[str]) -> tuple[list[str], bool]:
    """(sentences, whether the lead line was used up)."""
    short = all(len(i) <= SHORT_ITEM and not re.search(r"[.!?]\s", i) for i in items)
    if lead is not None and short:
        joined = ", ".join(re.sub(r"[\s.;,]+$", "", i) for i in items)
        return [_sentence(f"{lead.rstrip()} {joined}")], True
    return [_sentence(i) for i in items], False


def blocks_to_sentences(lines: list[str], markdown: bool) -> list[str]:
    """Rewrite table blocks (Markdown's; in any text, rows of |-separated cells with numbers) and list blocks
    as sentence lines; other lines pass as they are."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if markdown and i + 1 < len(lines) and line.strip() and not _LIST_ITEM.match(line) \
                and not _TABLE_ROW.match(line) and _SETEXT.match(lines[i + 1]) and not line.lstrip().startswith("#"):
            out.append("# " + line.strip())  # a setext heading: «Title» over «=====»
            i += 2
            continue
        if markdown and _TABLE_ROW.match(line):
            j = i
            while j < len(lines) and _TABLE_ROW.match(lines[j]):
                j += 1
            out.extend(table_sentences(lines[i:j]))
            i = j
            continue
        # Plain text: a table with outer pipes too («| Толщиномер | 3 900 ₽ |» in a site dump), which
        # would otherwise pass as a line and be dropped as a menu bar.
        end = bare_table_end(lines, i)
        if end > i:
            out.extend(bare_table_sentences(lines[i:end]))
            i = end
            continue
        if _LIST_ITEM.match(line):
            items, j = [], i
            while j < len(lines):
                m = _LIST_ITEM.match(lines[j])
                if m:
                    items.append(m.group("text").strip())
                elif lines[j].strip() or not (j + 1 < len(lines) and _LIST_ITEM.match(lines[j + 1])):
                    break  # a blank line between items keeps the list going
                j += 1
            prev = next((k for k in range(len(out) - 1, -1, -1) if out[k].strip()), None)
            lead = out[prev] if prev is not None and out[prev].rstrip().endswith(":") else None
            sentences, used = list_sentences(lead, items)
            if used:
                del out[prev:]
            out.extend(sentences)
            i = j
            continue
        out.append(line)
        i += 1
    return out
