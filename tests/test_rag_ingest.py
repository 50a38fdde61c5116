"""KB ingestion: encodings detected, formats read, page furniture dropped, sections kept."""
from pathlib import Path

import pytest

from metrotest_bot.rag.errors import KBError
from metrotest_bot.rag.ingest import MAX_PASSAGE_CHARS, is_furniture, parse_bytes, parse_file

SITE_DUMP = """Главная | О компании | Продукция | Контакты
Вы здесь: Главная > Сервис

=== Режим работы ===
Офис работает по будням с 8:30 до 17:30, в субботу и воскресенье выходной.

=== Доставка ===
Доставку по городу выполняем бесплатно. В другие регионы отправляем транспортной компанией.
Поделиться
Стр. 2 из 7

© 2004–2025 ООО «Метротест». Все права защищены. Политика конфиденциальности
"""

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _all_text(kb):
    return "\n".join(p.text for p in kb.passages)


def test_utf8_site_dump_keeps_sections_and_drops_furniture():
    kb = parse_bytes(SITE_DUMP.encode("utf-8"), "site.txt")
    assert [s.title for s in kb.sections] == ["Режим работы", "Доставка"]
    text = _all_text(kb)
    assert "8:30 до 17:30" in text and "транспортной компанией" in text
    for noise in ("Главная", "©", "Политика конфиденциальности", "Поделиться", "Стр. 2", "Вы здесь"):
        assert noise not in text
    delivery = [p for p in kb.passages if "бесплатно" in p.text]
    assert delivery and delivery[0].section == "Доставка"


def test_cp1251_is_detected_not_assumed():
    kb = parse_bytes(SITE_DUMP.encode("cp1251"), "site.txt")
    assert kb.encoding.replace("_", "").lower() in ("cp1251", "windows1251")
    assert "Доставку по городу выполняем бесплатно." in _all_text(kb)


def test_utf8_with_bom():
    kb = parse_bytes(b"\xef\xbb\xbf" + SITE_DUMP.encode("utf-8"), "site.txt")
    assert kb.encoding == "utf-8-sig"
    assert kb.sections[0].title == "Режим работы"  # the BOM did not glue onto the first line


def test_markdown_headings_lists_and_links():
    md = ("# Сервис\n\nВыезд инженера — **в течение 3 рабочих дней**.\n\n"
          "- Звоните: [+7 (343) 000-12-20](tel:+73430001220)\n- Пишите: `service@metrotest.example`\n\n"
          "## Гарантия\n\nГарантия — 24 месяца.\n")
    kb = parse_bytes(md.encode(), "kb.md")
    assert [s.title for s in kb.sections] == ["Сервис", "Гарантия"]
    text = _all_text(kb)
    assert "**" not in text and "](" not in text and "`" not in text
    assert "Звоните: +7 (343) 000-12-20" in text


def test_pdf_made_here_is_read_with_headers_and_page_numbers_dropped(tmp_path):
    fpdf = pytest.importorskip("fpdf")
    if not FONT.exists():
        pytest.skip(f"{FONT} is not installed (Debian package fonts-dejavu-core)")
    pdf = fpdf.FPDF()
    pdf.add_font("DejaVu", fname=str(FONT))
    pdf.set_font("DejaVu", size=12)
    pages = [
        ("Поверка", "Межповерочный интервал для прессов составляет один год. Поверку проводим за 5 рабочих дней."),
        ("Доставка", "Доставка по Екатеринбургу бесплатная, по России транспортной компанией."),
        ("Гарантия", "Гарантия на прессы 24 месяца с даты ввода в эксплуатацию."),
    ]
    for n, (title, body) in enumerate(pages, 1):
        pdf.add_page()
        pdf.cell(0, 10, "ООО «Метротест» — каталог 2025", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 10, f"=== {title} ===", new_x="LMARGIN", new_y="NEXT")
        pdf.multi_cell(0, 8, body)
        pdf.set_y(-20)
        pdf.cell(0, 10, f"Страница {n} из {len(pages)}")
    path = tmp_path / "Каталог.pdf"
    pdf.output(str(path))

    kb = parse_file(path)
    assert [s.title for s in kb.sections] == ["Поверка", "Доставка", "Гарантия"]
    text = _all_text(kb)
    assert "Межповерочный интервал для прессов составляет один год." in text
    assert "каталог 2025" not in text and "Страница" not in text


@pytest.mark.parametrize("name,data,message", [
    ("empty.txt", b"", "пустой"),
    ("blank.txt", b"  \n\n ", "пустой"),
    ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00", "Неподдерживаемый тип"),
    ("image.txt", bytes(range(256)) * 8, "не похож на текст"),
    ("fake.pdf", b"just text, not a pdf", "не является PDF"),
    ("menu.txt", "Главная | Каталог | Контакты\n© 2025 Метротест\n".encode(), "не найдено текста"),
])
def test_unusable_files_raise_kb_error_in_russian(name, data, message):
    with pytest.raises(KBError) as err:
        parse_bytes(data, name)
    assert message in err.value.message


def test_missing_file_is_a_kb_error(tmp_path):
    with pytest.raises(KBError):
        parse_file(tmp_path / "нет.txt")


@pytest.mark.parametrize("line", [
    "Главная | О компании | Продукция | Услуги",
    "Главная » Продукция » Прессы",
    "© 2004–2025 ООО «Метротест». Политика конфиденциальности. Карта сайта.",
    "Мы используем cookie",
    "- 3 -",
])
def test_furniture_lines(line):
    assert is_furniture(line)


@pytest.mark.parametrize("line", [
    "Прессы серии ПИ: ПИ-500, ПИ-1000 и ПИ-2000 | в наличии на складе в Екатеринбурге с понедельника.",
    "Отдел продаж: +7 (343) 000-12-10.",
    "Гарантия 24 месяца.",
])
def test_content_lines_are_not_furniture(line):
    assert not is_furniture(line)


def test_long_paragraphs_split_at_sentences_and_keep_title():
    para = " ".join(f"Предложение номер {i} о доставке оборудования по России." for i in range(30))
    kb = parse_bytes(f"=== Доставка ===\n{para}\n".encode(), "kb.txt")
    assert len(kb.passages) > 1
    assert all(p.section == "Доставка" and p.text.endswith(".") for p in kb.passages)
    assert all(len(p.text) <= MAX_PASSAGE_CHARS for p in kb.passages)
    # Pieces of about equal length: no sentence is left alone at the end, cut off from what it is about.
    lengths = [len(p.text) for p in kb.passages]
    assert max(lengths) - min(lengths) <= 60


def test_even_pieces_lose_nothing_and_stay_under_the_limit_whatever_the_sentences():
    import random

    from metrotest_bot.rag.ingest import _split_evenly

    rng = random.Random(1)
    for _ in range(3000):
        # Short, near-limit and over-limit sentences mixed: an even cut alone overflowed on [28, 395, 384].
        sentences = ["ж" * rng.choice([rng.randint(5, 80), rng.randint(80, 450), rng.randint(400, 3000)]) + "."
                     for _ in range(rng.randint(1, 40))]
        pieces = _split_evenly(sentences)
        assert " ".join(pieces) == " ".join(sentences)
        assert all(len(p) <= MAX_PASSAGE_CHARS or p in sentences for p in pieces)
    assert _split_evenly(["ж" * 27 + ".", "ж" * 394 + ".", "ж" * 383 + "."]) == ["ж" * 27 + ".", "ж" * 394 + ".", "ж" * 383 + "."]


def test_a_long_paragraph_is_not_joined_to_the_next_and_short_ones_are():
    entry = "ДШ-10 — динамический штамп для контроля грунтов. " + "Характеристика прибора номер один. " * 24
    kb = parse_bytes(f"=== Каталог ===\n{entry}Цена — 438 000 рублей.\nПДУ-3М — плотномер.\nЦена — 96 000 рублей.\n"
                     .encode(), "kb.txt")
    texts = [p.text for p in kb.passages]
    assert texts[-1] == "ПДУ-3М — плотномер. Цена — 96 000 рублей."  # two short lines, one passage
    # The entry's last piece keeps its price with the sentences before it, not alone.
    assert texts[-2].endswith("Характеристика прибора номер один. Цена — 438 000 рублей.")
    assert texts[0].startswith("ДШ-10") and all("ПДУ-3М" not in t for t in texts[:-1])
