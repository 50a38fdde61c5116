"""KB files → clean sections → passages.

A KB is often a website dump: navigation menus, breadcrumbs, copyright and
cookie lines, page numbers. That furniture is dropped here so it never
reaches an answer. Each passage keeps the title of its section; a dump's page opens with its
title (its first line under the menu, or the line above its address), which names the sections
it shares with other pages («Адгезиметр ОА-20 / Технические характеристики»).

Supported: .txt (UTF-8, UTF-8 with BOM, cp1251 and other Cyrillic code
pages — detected, not assumed), .md (headings are sections; tables and lists
become sentences: text_blocks.py), .pdf (text layer via pypdf, headings from
font size and weight: pdf_text.py).
"""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import KBError
from .pdf_text import pdf_text_lines
from .text_blocks import blocks_to_sentences
from .upload_limits import IngestLimits, TimeBudget

SUPPORTED = (".txt", ".md", ".pdf")

# Passage size: a paragraph of the site is the natural unit; very long ones
# are cut at sentence ends into pieces of about equal length, tiny ones are merged with their neighbour.
MAX_PASSAGE_CHARS = 420
# Passes at one more piece each before a long paragraph is cut wherever the next sentence would not fit.
EVEN_SPLIT_TRIES = 3
MIN_PASSAGE_CHARS = 60


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    parent: str = ""  # the title of the heading it sits under (see _told_apart)
    opening: bool = False  # a dump page's title read from a line of its text (given back if no text follows)


@dataclass
class PassageText:
    section: str
    text: str
    position: int


@dataclass
class ParsedKB:
    filename: str
    encoding: str | None
    sha256: str
    sections: list[Section]
    passages: list[PassageText]

    @property
    def n_sections(self) -> int:
        return sum(1 for s in self.sections if s.paragraphs)


# --- reading ---------------------------------------------------------------

def decode_text(data: bytes) -> tuple[str, str]:
    """Bytes of a text file → (text, encoding). Raises KBError for binary data."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    if b"\x00" in data[:4096]:
        raise KBError("Файл не похож на текст: в нём двоичные данные. Загрузите .txt, .md или .pdf.")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # Only encodings a Russian text file realistically comes in: a short
    # cp1251 file must not be "detected" as some Central-European code page.
    best = from_bytes(data, cp_isolation=["cp1251", "koi8_r", "cp866", "mac_cyrillic", "iso8859_5"]).best()
    if best is None:
        raise KBError("Не удалось определить кодировку файла. Сохраните его в UTF-8 или Windows-1251.")
    text = str(best)
    if _control_ratio(text) > 0.01:
        raise KBError("Файл не похож на текст: в нём двоичные данные. Загрузите .txt, .md или .pdf.")
    return text, best.encoding


def _control_ratio(text: str) -> float:
    if not text:
        return 0.0
    bad = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t\f")
    return bad / len(text)


# --- furniture ---------------------------------------------------------------

_MENU_SEP = re.compile(r"\s[|•·/»>]\s|\s{3,}")
_FURNITURE = re.compile(
    r"(©|\(c\)|copyright|все права защищены|политика конфиденциальности|карта сайта|"
    r"пользовательское соглашение|использ\w* (файлы )?cookie|куки|наверх|поделиться|"
    r"подпис\w+ на (новости|рассылку)|версия для печати|^главная$|^меню$|^поиск$|"
    r"^(вход|регистрация|войти)$|^читать далее|^подробнее$)",
    re.IGNORECASE,
)
_PAGE_NUMBER = re.compile(r"^(стр(аница)?\.?\s*)?[-–—]*\s*\d{1,4}\s*([-–—]+|из\s+\d+)?\s*[-–—]*$", re.IGNORECASE)


# A row of a page's buttons or form fields: «[Купить] [Запросить КП] [Добавить к сравнению]».
_BUTTONS = re.compile(r"^(\[[^\[\]]{0,60}\]\s*){2,}$")
_BREADCRUMB = re.compile(r"^(вы здесь|вы находитесь|главная|home)\b.{0,40}\s[>»›/]\s", re.IGNORECASE)


def is_menu_line(line: str) -> bool:
    """A navigation bar (several short items separated by |, •, / or ›) or a breadcrumb."""
    if _BREADCRUMB.search(line) and len(line) <= 150:
        return True
    parts = [p.strip() for p in re.split(r"[|•·›»]| > | / ", line) if p.strip()]
    if len(parts) >= 3 and all(len(p) <= 30 for p in parts) and not re.search(r"[.!?:]\s*$", line):
        return True
    return False


def is_furniture(line: str) -> bool:
    s = line.strip()
    if not s:
        return False
    if is_menu_line(s) or _PAGE_NUMBER.match(s) or not re.search(r"\w", s):  # «-----», «* * *»: a rule
        return True
    if _BUTTONS.match(s):
        return True
    # Short lines only: a real sentence that mentions cookies or copyright stays.
    return len(s) <= 120 and bool(_FURNITURE.search(s))


# --- structure -----------------------------------------------------------------

# (pattern, level): a page's title is level 1, a sub-heading deeper (for «## Title», the number of #).
_HEADING_MARKED = [
    (re.compile(r"^\s*={2,}\s*(.+?)\s*={2,}\s*$"), 1),  # === Title ===
    (re.compile(r"^\s*(#{1,6})\s+(.+?)\s*#*\s*$"), 0),  # ## Title (also in .txt dumps)
    (re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*$"), 1),  # [Title] («[Купить] [В корзину]» is a row of buttons)
    (re.compile(r"^\s*-{2,}\s*([^-].*?)\s*-{2,}\s*$"), 2),  # --- Subtitle --- (a page's sub-heading in a dump)
]
UNMARKED_LEVEL = 9  # an unmarked title («Описание» on a product's page) is below every marked one
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)


def _marked_heading(line: str) -> tuple[str, int] | None:
    """(title, level) of a marked heading line."""
    for pattern, level in _HEADING_MARKED:
        m = pattern.match(line)
        if m and re.search(r"[^\W\d_]", m.group(m.lastindex)):  # a title has a letter («---- 1 ----» is a rule)
            return m.group(m.lastindex).strip(), level or len(m.group(1))
    return None


_PAGE_START = re.compile(r"^\W*(\w+:\s*)?(https?://|www\.)\S*\W*$", re.IGNORECASE)  # «URL: https://…»


def _parent(parents: list[tuple[int, str]], title: str, level: int) -> str:
    """The title of the heading this one sits under («# Твердомер Роквелла ТР-150» for an «Описание» below
    it), or "" — a URL is no title. Pops the headings this one closes and pushes it."""
    while parents and parents[-1][0] >= level:
        parents.pop()
    parent = parents[-1][1] if parents else ""
    parents.append((level, title))
    return "" if _URL.search(parent) else parent


def _told_apart(sections: list[Section]) -> None:
    """A title several sections share takes its parent's: each product page of a site dump has its
    «Описание» and «Технические характеристики», and a passage of one must say which product it is about
    (a section's title is indexed with its passages and read by the LLM). A title of its own stays as
    written: a parent's words on every child would pull its neighbours into its questions."""
    shared = Counter(s.title for s in sections)
    for section in sections:
        if section.parent and shared[section.title] > 1:
            section.title = f"{section.parent} / {section.title}"


def _looks_like_heading(line: str, next_line: str | None) -> bool:
    """An unmarked title: short, no final punctuation, followed by body text."""
    s = line.strip()
    if not s or len(s) > 70 or re.search(r"[.,;:!?…]$", s) or not s[0].isupper():
        return False
    if re.search(r"\d{3,}|@|\+\d", s):  # phones, prices: data, not titles
        return False
    return next_line is not None and len(next_line.strip()) > len(s)


def _page_title(line: str) -> bool:
    """The first line of a dump's page reads as its title: short, no final punctuation, no data in it."""
    s = line.strip()
    return (len(s) <= 90 and s[:1].isupper() and not re.search(r"[.,;:!?…]$", s)
            # a phone, a price, a «label: value» line («Масса: 0,9 кг»); not a code (КСТ-1000)
            and not re.search(r"\d[\d ()-]{8,}\d|\d{3} \d{3}|@|₽|руб|:\s", s))


_MD_INLINE = [
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links → their text
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])[*_](?!\s)(.+?)(?<!\s)[*_](?![\w*])"), r"\1"),
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"^\s*>\s?"), ""),  # quotes
    (re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+"), ""),  # list markers
]


def strip_markdown(line: str) -> str:
    for pattern, repl in _MD_INLINE:
        line = pattern.sub(repl, line)
    if re.fullmatch(r"\s*(\|?\s*:?-{3,}:?\s*)+\|?\s*|\s*[-*_]{3,}\s*", line):
        return ""  # table rules, horizontal rules
    if line.strip().startswith("|"):
        line = " — ".join(c.strip() for c in line.strip().strip("|").split("|") if c.strip())
    return line


def split_sections(lines: list[str], markdown: bool = False) -> list[Section]:
    sections = [Section(title="")]
    in_code = False
    clean = []
    for raw in lines:
        line = raw.replace("\u00a0", " ").replace("\t", " ").rstrip()
        if markdown and line.strip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        clean.append(line)
    nonblank = [i for i, line in enumerate(clean) if line.strip()]
    # A line the file repeats (a menu item written one per line, «Назад в каталог») is the site's, no page's title.
    repeated = Counter(_squash(clean[i]) for i in nonblank)
    open_headings: list[tuple[int, str]] = []  # (level, title) of the headings above this line
    page_top = False  # after a page's boundary, before its first line of content (menus and breadcrumbs aside)
    page_titled = False  # the line before opened a page («# Title»): an address under it is that page's
    for k, i in enumerate(nonblank):
        line = clean[i]
        nxt = clean[nonblank[k + 1]] if k + 1 < len(nonblank) else None
        address = bool(_PAGE_START.match(line))
        if address and not page_titled and _title_above(sections[-1], clean, nonblank, k, repeated, opened=True):
            # «Пенетрометр ПН-10» (read as a sub-heading), then «URL: …»: that title is this page's.
            sections[-1].parent = ""
            open_headings[:] = [(1, sections[-1].title)]
            page_titled = True
        if _boundary(line) and not (address and page_titled):
            open_headings.clear()  # a rule or a page's address: a dump's next page, whose headings are its own
            page_top = not markdown
            if address and not markdown and _title_above(sections[-1], clean, nonblank, k, repeated):
                # «ТВО-12 — аппарат для определения температуры вспышки…», then «URL: …»: taken for the page
                # before's last line, it is this page's title.
                above = sections[-1].paragraphs.pop()
                sections.append(Section(title=above, parent=_parent(open_headings, above, 1), opening=True))
                page_top = False
        page_titled = False
        title, level = _marked_heading(line) or (None, UNMARKED_LEVEL)
        # A page's marked title («# Title», «=== Title ===»; not a button «[Купить]»): its address may follow.
        root = title is not None and level <= 1 and not line.lstrip().startswith("[")
        opening = False
        if page_top and not _boundary(line) and not is_furniture(line):
            page_top = False
            # Its page follows it: not another rule or address (a line between rules is a line of text).
            page = nxt is not None and not _boundary(nxt)
            if title is None and page and _page_title(line) and repeated[_squash(line)] == 1:
                # A dump's page opens with its title, under the site's menu and breadcrumbs, with no blank line
                # and no mark («Адгезиметр отрывной цифровой ОА-20», then «Артикул: …»).
                title, level, root, opening = line.strip(), 1, True, True
        if title is None and not markdown:
            prev_blank = i == 0 or not clean[i - 1].strip()
            if prev_blank and _looks_like_heading(line, nxt) and not is_furniture(line):
                title = line.strip()
        if title is not None:
            title = strip_markdown(title).strip()
            if not is_furniture(title):
                sections.append(Section(title=title, parent=_parent(open_headings, title, level), opening=opening))
                page_titled = root
            continue
        if is_furniture(line):
            continue
        text = strip_markdown(line) if markdown else line
        text = _squash(text)
        if text and not is_furniture(text):
            sections[-1].paragraphs.append(text)
    parents = {section.parent for section in sections}
    for before, section in zip(sections, sections[1:]):
        # A page title with no page under it (no text, no sub-section) was a line of text.
        if section.opening and not section.paragraphs and section.title not in parents:
            before.paragraphs.append(section.title)
    kept = [s for s in sections if s.paragraphs]
    _told_apart(kept)
    return kept


def _squash(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def _boundary(line: str) -> bool:
    """A dump's page boundary: a rule (a line with no word in it) or a page's address line."""
    return not re.search(r"\w", line) or bool(_PAGE_START.match(line))


def _title_above(section: Section, clean: list[str], nonblank: list[int], k: int, repeated: Counter,
                 opened: bool = False) -> bool:
    """Is the line above a page's address that page's title — read as the page before's last line, or (opened)
    as a section's title? It stands alone (a blank line or the file's start above it), reads as a page's title
    and is said once in the file."""
    if k == 0:
        return False
    i = nonblank[k - 1]
    above = _squash(clean[i])
    if opened:
        held = not section.paragraphs and section.title == above
    else:
        held = bool(section.paragraphs) and section.paragraphs[-1] == above
    return held and (i == 0 or not clean[i - 1].strip()) and _page_title(above) and repeated[above] == 1


# --- passages ------------------------------------------------------------------

def _sentences(text: str) -> list[str]:
    from razdel import sentenize

    return [s.text for s in sentenize(text)]


def _split_evenly(sentences: list[str]) -> list[str]:
    """A long paragraph's sentences in pieces of at most MAX_PASSAGE_CHARS (a sentence longer than that stays
    whole, alone) and of about equal length: cut greedily, a catalogue entry's last sentence was left alone
    («Цена — 438 000 рублей.»), with nothing to say what it is the price of."""
    total = sum(len(s) + 1 for s in sentences)
    count = math.ceil(total / MAX_PASSAGE_CHARS)
    # A few more pieces when sentence lengths make an even cut overflow; then a cut wherever the next
    # sentence would not fit (a bounded number of passes: an upload's paragraph can be megabytes long).
    for tries in range(EVEN_SPLIT_TRIES + 1):
        pieces = _cut(sentences, total, count + tries, last=tries == EVEN_SPLIT_TRIES)
        if all(len(p) <= MAX_PASSAGE_CHARS or n == 1 for p, n in pieces):
            break
    return [p for p, _ in pieces]


def _cut(sentences: list[str], total: int, count: int, last: bool) -> list[tuple[str, int]]:
    """(piece, its number of sentences): cut at the sentence end nearest each k/count of the whole; on
    the last pass also wherever the next sentence would not fit."""
    pieces, current, n, done = [], "", 0, 0
    for sent in sentences:
        goal = total * (len(pieces) + 1) / count
        even = len(pieces) < count - 1 and done + (len(sent) + 1) / 2 > goal
        if current and (even or last and len(current) + 1 + len(sent) > MAX_PASSAGE_CHARS):
            pieces.append((current, n))
            current, n = "", 0
        current, n = f"{current} {sent}".strip(), n + 1
        done += len(sent) + 1
    pieces.append((current, n))
    return pieces


def make_passages(sections: list[Section]) -> list[PassageText]:
    passages: list[PassageText] = []
    for section in sections:
        chunks: list[tuple[str, bool]] = []  # (text, a whole paragraph)
        for para in section.paragraphs:
            if len(para) <= MAX_PASSAGE_CHARS:
                chunks.append((para, True))
                continue
            chunks += [(part, False) for part in _split_evenly(_sentences(para))]
        merged: list[str] = []
        whole_before = False
        for chunk, whole in chunks:
            # Short paragraphs (list items, one-line facts) join; a piece of a long one stays its own.
            if merged and whole and whole_before and (len(merged[-1]) < MIN_PASSAGE_CHARS or len(chunk) < MIN_PASSAGE_CHARS) \
                    and len(merged[-1]) + len(chunk) < MAX_PASSAGE_CHARS:
                merged[-1] = f"{merged[-1]} {chunk}"
            else:
                merged.append(chunk)
            whole_before = whole
        for chunk in merged:
            passages.append(PassageText(section=section.title, text=chunk, position=len(passages)))
    return passages


def parse_bytes(data: bytes, filename: str, limits: IngestLimits | None = None,
                budget: TimeBudget | None = None) -> ParsedKB:
    """Parse a KB file's bytes. Raises KBError with a message for the admin."""
    limits = limits or IngestLimits()
    budget = budget or limits.budget()
    suffix = Path(filename).suffix.lower()
    if suffix not in SUPPORTED:
        shown = suffix or "без расширения"
        raise KBError(f"Неподдерживаемый тип файла ({shown}). Загрузите .txt, .md или .pdf.")
    limits.check_size(len(data))
    if not data or not data.strip():
        raise KBError("Файл пустой: в нём нет текста.")
    encoding = None
    if suffix == ".pdf":
        if not data.startswith(b"%PDF"):
            raise KBError("Файл с расширением .pdf не является PDF-документом.")
        sections = split_sections(blocks_to_sentences(pdf_text_lines(data, limits, budget), markdown=False))
    else:
        text, encoding = decode_text(data)
        limits.check_text(len(text))
        markdown = suffix == ".md"
        sections = split_sections(blocks_to_sentences(text.splitlines(), markdown), markdown=markdown)
    budget.check()
    passages = make_passages(sections)
    budget.check()
    if not passages:
        raise KBError("В файле не найдено текста для базы знаний (после удаления меню и служебных строк он пуст).")
    return ParsedKB(filename=filename, encoding=encoding, sha256=hashlib.sha256(data).hexdigest(),
                    sections=sections, passages=passages)


def parse_file(path: str | Path, limits: IngestLimits | None = None, budget: TimeBudget | None = None) -> ParsedKB:
    path = Path(path)
    limits = limits or IngestLimits()
    try:
        limits.check_size(path.stat().st_size)  # before reading it into memory
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KBError(f"Файл базы знаний не найден: {path}") from exc
    except OSError as exc:
        raise KBError(f"Не удалось прочитать файл базы знаний: {exc.strerror}") from exc
    return parse_bytes(data, path.name, limits, budget)
