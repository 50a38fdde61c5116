"""KB structure kept: Markdown headings, tables and lists, PDF headings by font; each test makes its own file."""
from pathlib import Path

import pytest

from metrotest_bot.rag.ingest import parse_bytes, parse_file
from metrotest_bot.rag.speakable import split_text
from metrotest_bot.rag.speech import speech_form

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")

MARKDOWN = """# Метротест — база знаний

Прайс-лист
==========

Цены указаны с НДС.

| Модель | Цена |
|--------|------|
| ПИ-500 | от 640 000 рублей |
| ПИ-2000 | от 920 000 рублей |

## Прессы для бетона

| Модель | Нагрузка, кН | Цена |
|:--|--:|--|
| ПИ-500 | 500 | от 640 000 рублей |
| ПИ-2000 | 2000 | от 920 000 рублей |

## Оплата

Мы принимаем:

- безналичный расчёт;
- лизинг через партнёров;
- оплату картой для физических лиц.

Как заказать:

1. Пришлите заявку на почту отдела продаж с описанием задачи, материалов и стандартов испытаний
2. Получите коммерческое предложение в течение одного рабочего дня
"""


def _texts(kb, section):
    return " ".join(p.text for p in kb.passages if p.section == section)


def test_markdown_headings_are_sections_and_table_rows_are_sentences():
    kb = parse_bytes(MARKDOWN.encode("utf-8"), "kb.md")
    assert [s.title for s in kb.sections] == ["Прайс-лист", "Прессы для бетона", "Оплата"]
    prices = _texts(kb, "Прайс-лист")
    # One sentence per row; the header row is not read out as a row of its own.
    assert "ПИ-500 — от 640 000 рублей. ПИ-2000 — от 920 000 рублей." in prices
    assert "|" not in prices and "Модель — Цена" not in prices and "---" not in prices
    # With more columns the header names each value; a unit in the header follows its number.
    presses = _texts(kb, "Прессы для бетона")
    assert presses == ("ПИ-500: нагрузка — 500 кН, цена — от 640 000 рублей. "
                       "ПИ-2000: нагрузка — 2000 кН, цена — от 920 000 рублей.")


def test_a_table_row_is_a_piece_of_its_own_and_reads_as_said():
    kb = parse_bytes(MARKDOWN.encode("utf-8"), "kb.md")
    pieces = split_text(_texts(kb, "Прайс-лист"))
    assert "ПИ-500 — от 640 000 рублей." in pieces
    assert speech_form("ПИ-500 — от 640 000 рублей.") == "пэ и пятьсот — от шестисот сорока тысяч рублей."
    presses = [speech_form(p) for p in split_text(_texts(kb, "Прессы для бетона"))]
    assert presses[0] == "пэ и пятьсот: нагрузка — пятьсот килоньютонов, цена — от шестисот сорока тысяч рублей."


def test_markdown_lists_become_sentences():
    kb = parse_bytes(MARKDOWN.encode("utf-8"), "kb.md")
    payment = _texts(kb, "Оплата")
    # A short list joins its lead line; long items are sentences of their own.
    assert "Мы принимаем: безналичный расчёт, лизинг через партнёров, оплату картой для физических лиц." in payment
    assert ("Пришлите заявку на почту отдела продаж с описанием задачи, материалов и стандартов испытаний. "
            "Получите коммерческое предложение в течение одного рабочего дня.") in payment
    assert "- " not in payment and "1. " not in payment and ";" not in payment


@pytest.fixture
def fpdf():
    module = pytest.importorskip("fpdf")
    if not (FONT.exists() and BOLD.exists()):
        pytest.skip(f"{FONT.parent} has no DejaVu fonts (Debian package fonts-dejavu-core)")
    return module


def _pdf(fpdf, running_header=True):
    class Document(fpdf.FPDF):
        def header(self):
            if running_header:
                self.set_font("DejaVu", size=8)
                self.cell(0, 6, "Метротест — база знаний (PDF)", new_x="LMARGIN", new_y="NEXT")

        def footer(self):
            self.set_y(-15)
            self.set_font("DejaVu", size=8)
            self.cell(0, 10, str(self.page_no()), align="C")

    pdf = Document()
    pdf.add_font("DejaVu", fname=str(FONT))
    pdf.add_font("DejaVu", style="B", fname=str(BOLD))
    return pdf


def _write(pdf, size, text, bold=False):
    pdf.set_font("DejaVu", style="B" if bold else "", size=size)
    pdf.multi_cell(0, size * 0.6, text, new_x="LMARGIN", new_y="NEXT")


def test_pdf_headings_come_from_font_size_and_bold_and_furniture_is_dropped(fpdf, tmp_path):
    pdf = _pdf(fpdf)
    pdf.add_page()
    _write(pdf, 18, "Режим работы")
    _write(pdf, 11, "Офис работает по будням с 8:30 до 17:30 по екатеринбургскому времени. "
                    "В субботу и воскресенье выходной.")
    _write(pdf, 11, "Горячая линия", bold=True)
    _write(pdf, 11, "Техническая поддержка отвечает на звонки по будням с 7:00 до 20:00, в том числе "
                    "по вопросам поверки, ремонта и обновления программы испытаний.")
    pdf.add_page()
    _write(pdf, 18, "Доставка")
    _write(pdf, 11, "Доставляем оборудование по всей России транспортными компаниями, по Екатеринбургу "
                    "доставка бесплатная, срок доставки в Москву составляет от пяти до семи дней.")
    _write(pdf, 11, "Способы оплаты:")
    _write(pdf, 11, "• безналичный расчёт")
    _write(pdf, 11, "• лизинг через партнёров")
    path = tmp_path / "База знаний.pdf"
    pdf.output(str(path))

    kb = parse_file(path)
    assert [s.title for s in kb.sections] == ["Режим работы", "Горячая линия", "Доставка"]
    hours = _texts(kb, "Режим работы")
    assert hours.startswith("Офис работает по будням")  # not «Метротест — база знаний (PDF) Режим работы Офис…»
    assert "в том числе по вопросам поверки" in _texts(kb, "Горячая линия")  # visual lines glued back
    delivery = _texts(kb, "Доставка")
    assert "срок доставки в Москву составляет от пяти до семи дней." in delivery
    assert "Способы оплаты: безналичный расчёт, лизинг через партнёров." in delivery
    everything = " ".join(p.text for p in kb.passages)
    assert "база знаний (PDF)" not in everything and "•" not in everything
    assert not any(p.text.rstrip(".").isdigit() or p.text.endswith((" 1", " 2")) for p in kb.passages)


def test_a_one_page_pdf_loses_its_small_print_header_and_page_number(fpdf, tmp_path):
    pdf = _pdf(fpdf)
    pdf.add_page()
    _write(pdf, 16, "Гарантия")
    _write(pdf, 11, "Гарантия на прессы и машины составляет 24 месяца с даты ввода в эксплуатацию.")
    path = tmp_path / "Гарантия.pdf"
    pdf.output(str(path))

    kb = parse_file(path)
    assert [s.title for s in kb.sections] == ["Гарантия"]
    assert [p.text for p in kb.passages] == [
        "Гарантия на прессы и машины составляет 24 месяца с даты ввода в эксплуатацию."]


def test_a_dashed_page_number_is_no_list_item():
    kb = parse_bytes("=== Доставка ===\nДоставляем по всей России.\n- 3 -\n- Москва — 5 дней\n- Казань — 3 дня\n"
                     .encode("utf-8"), "kb.txt")
    assert [p.text for p in kb.passages] == ["Доставляем по всей России. Москва — 5 дней. Казань — 3 дня."]


def test_a_dashed_sub_heading_is_a_section_and_a_dashed_rule_is_not():
    # Website dumps mark a page's sub-headings «--- Title ---»: each is the title its models are found under.
    kb = parse_bytes("=== Каталог ===\nВсе цены с НДС.\n\n--- Сушильные шкафы серии ШС ---\n"
                     "ШС-80. Объём 80 литров. Цена — 58 700 рублей.\n---- 2 ----\n-----\n"
                     "--- Муфельные печи ---\nПМ-8. Цена — 76 000 рублей.\n".encode("utf-8"), "kb.txt")
    assert [s.title for s in kb.sections] == ["Каталог", "Сушильные шкафы серии ШС", "Муфельные печи"]
    assert [p.text for p in kb.passages if p.section == "Сушильные шкафы серии ШС"] == [
        "ШС-80. Объём 80 литров. Цена — 58 700 рублей."]


def test_a_table_without_outer_pipes_is_read_row_by_row_and_a_menu_bar_is_not():
    # A price table pasted into a .txt dump («Пакет | Цена | Срок») was dropped as a menu bar.
    kb = parse_bytes("Главная | Каталог | Лаборатория | Контакты\n=== Анализы воды ===\nПакет | Цена | Срок\n"
                     "Базовый (12 показателей) | 3 200 руб. | 5 рабочих дней\n"
                     "Расширенный (30 показателей) | 7 900 руб. | 7 рабочих дней\n".encode("utf-8"), "kb.txt")
    text = " ".join(p.text for p in kb.passages)
    assert "Базовый (12 показателей): цена — 3 200 руб., срок — 5 рабочих дней." in text
    assert "Расширенный (30 показателей): цена — 7 900 руб., срок — 7 рабочих дней." in text
    assert "Главная" not in text and "Пакет" not in text


def test_a_table_with_outer_pipes_in_a_txt_dump_is_read_row_by_row_and_a_menu_bar_is_not():
    # «| Ультразвуковой толщиномер | 3 900 ₽ | 3 рабочих дня |» in a .txt dump passed as a line and was dropped
    # as a menu bar (short cells between pipes); rows with a long cell stayed, pipes and all.
    kb = parse_bytes("| Главная | Каталог | Сервис | Контакты |\n=== Поверка ===\nИнтервал между поверками — 1 год.\n\n"
                     "| Прибор | Поверка | Срок |\n|---|---|---|\n"
                     "| Ультразвуковой толщиномер | 3 900 ₽ | 3 рабочих дня |\n"
                     "| Ультразвуковой дефектоскоп с фазированной решёткой и двумя датчиками | 16 500 ₽ | 7 рабочих дней |\n"
                     .encode("utf-8"), "kb.txt")
    text = " ".join(p.text for p in kb.passages)
    assert "Ультразвуковой толщиномер: поверка — 3 900 ₽, срок — 3 рабочих дня." in text
    assert ("Ультразвуковой дефектоскоп с фазированной решёткой и двумя датчиками: поверка — 16 500 ₽, "
            "срок — 7 рабочих дней.") in text
    assert "|" not in text and "Главная" not in text and "Прибор" not in text


def test_a_title_several_pages_share_takes_its_parents_and_a_title_of_its_own_does_not():
    dump = ("# Твердомер ТР-150\n\nЦена: 184 000 ₽.\n\n"
            "Описание\n\nНастольный твердомер с механическим нагружением грузами.\n\n"
            "[Купить] [Запросить КП] [Добавить к сравнению]\n\n----------\n\n"
            "# Твердомер ТБ-3000\n\nЦена: 342 000 ₽.\n\n"
            "Описание\n\nСтационарный твердомер Бринелля с электромеханическим нагружением.\n\n----------\n\n"
            # A page without a title of its own: nothing of the page before is carried over the rule.
            "Описание\n\nПортативный твердомер для измерений на месте эксплуатации.\n\n"
            "Доставка\n\nОтгружаем транспортной компанией в течение трёх рабочих дней.\n")
    kb = parse_bytes(dump.encode("utf-8"), "site.txt")
    assert [s.title for s in kb.sections] == ["Твердомер ТР-150", "Твердомер ТР-150 / Описание", "Твердомер ТБ-3000",
                                              "Твердомер ТБ-3000 / Описание", "Описание", "Доставка"]
    # A row of a page's buttons is furniture, neither a title nor text.
    assert not any("Купить" in p.text or "Купить" in p.section for p in kb.passages)


def test_a_dump_pages_first_line_under_its_menu_and_breadcrumbs_is_its_title():
    menu = "ЛакТест | Главная | О компании | Каталог | Услуги | Контакты | ☎ 8-800-350-27-14\n"
    page = ("================\nURL: https://laktest.example/catalog/{slug}/\n" + menu
            + "Главная / Каталог / Адгезиметры / {code}\n{title}\nАртикул: LT-01{n}\n\n{about}\n\n"
            "Технические характеристики\nДиапазон измерения и погрешность приведены в паспорте прибора: {spec}.\n\n"
            "[В корзину] [Запросить КП] [Сравнить]\n")
    dump = (page.format(slug="an-6", code="АН-6", title="Адгезиметр решётчатого надреза АН-6", n=1,
                        about="Нож наносит шесть параллельных надрезов.", spec="ресурс ножа около 1 500 надрезов")
            + page.format(slug="tms-2000", code="ТМС-2000", title="Толщиномер мокрого слоя ТМС-2000 (гребёнка)", n=2,
                          about="Гребёнку ставят перпендикулярно поверхности.", spec="от 25 до 2000 мкм")
            # A page opening with data (a price), not a title: its text stays untitled.
            + "================\nURL: https://laktest.example/price/\n" + menu
            + "Цена комплекта — 24 600 ₽ с НДС, срок поставки два дня\n\nДоставка по России транспортной компанией.\n")
    kb = parse_bytes(dump.encode("utf-8"), "site.txt")
    titles = [s.title for s in kb.sections if s.title]
    assert titles == [
        "Адгезиметр решётчатого надреза АН-6", "Адгезиметр решётчатого надреза АН-6 / Технические характеристики",
        "Толщиномер мокрого слоя ТМС-2000 (гребёнка)",
        "Толщиномер мокрого слоя ТМС-2000 (гребёнка) / Технические характеристики"]
    assert any("24 600 ₽" in p.text for p in kb.passages)  # data, not a title
    spec = next(p for p in kb.passages if "1 500 надрезов" in p.text)
    assert spec.section.startswith("Адгезиметр решётчатого надреза АН-6")  # which product the figure is of


def test_a_title_above_its_pages_address_titles_that_page():
    dump = ("# ТВП-20 — аппарат для определения температуры вспышки в закрытом тигле\n"
            "URL: https://neftelab.example/catalog/tvp-20/\nГлавная | Каталог | Услуги | О компании | Контакты\n\n"
            "Цена: 412 000 ₽ с НДС (включая первичную поверку)\n\nОписание\nАппарат сам нагревает пробу и фиксирует "
            "вспышку.\n\n[Купить] [Запросить КП]\n© 2024 НефтеЛаб\n\n\n"
            # Unmarked, and read as the text of the page before until its address comes.
            "ТВО-12 — аппарат для определения температуры вспышки в открытом тигле\n"
            "URL: https://neftelab.example/catalog/tvo-12/\nГлавная | Каталог | Услуги | О компании | Контакты\n\n"
            "Цена: 356 000 ₽ с НДС (включая первичную поверку)\n\nОписание\nАппарат для нефтяных масел и битумов "
            "с температурой вспышки выше 79 °C.\n")
    kb = parse_bytes(dump.encode("utf-8"), "site.txt")
    assert [s.title for s in kb.sections] == [
        "ТВП-20 — аппарат для определения температуры вспышки в закрытом тигле",
        "ТВП-20 — аппарат для определения температуры вспышки в закрытом тигле / Описание",
        "ТВО-12 — аппарат для определения температуры вспышки в открытом тигле",
        "ТВО-12 — аппарат для определения температуры вспышки в открытом тигле / Описание"]
    price = next(p for p in kb.passages if "356 000" in p.text)
    assert price.section.startswith("ТВО-12") and "ТВП-20" not in price.text


def test_a_line_taken_for_a_pages_title_is_never_lost_nor_a_menu_item_or_a_value_a_title():
    plain = ("Гарантия на все приборы 24 месяца\n-----\nПоверка проводится в аккредитованной лаборатории\n-----\n"
             "Доставка по России транспортной компанией в течение трёх дней.\n")
    kb = parse_bytes(plain.encode("utf-8"), "kb.txt")
    text = " ".join(p.text for p in kb.passages)
    assert "Гарантия на все приборы 24 месяца" in text and "Поверка проводится в аккредитованной лаборатории" in text
    # A menu written one item per line opens every page: the site's, not a page's title.
    page = ("-----\nГлавная\nО компании\nКаталог\n{title}\n\nОписание\n{about}\n\n")
    dump = (page.format(title="Весы лабораторные ВК-300", about="Весы с дискретностью 0,001 г для лабораторий.")
            + page.format(title="Весы лабораторные ВК-600", about="Весы с дискретностью 0,01 г для склада."))
    kb = parse_bytes(dump.encode("utf-8"), "site.txt")
    assert not any(s.title.startswith("О компании") for s in kb.sections)
    # A spec line above the next page's address stays the spec of its own product.
    dump = ("Тестер УЗП-2\nОписание\nТестер измеряет прочность бетона ультразвуком.\nМасса: 0,9 кг\n"
            "URL: https://firma.example/pgi-1000/\nГлавная | Каталог | Услуги | Контакты\n"
            "Пресс гидравлический ПГИ-1000\nОписание\nПресс для испытаний бетонных образцов на сжатие.\n")
    kb = parse_bytes(dump.encode("utf-8"), "site.txt")
    mass = next(p for p in kb.passages if "0,9 кг" in p.text)
    assert "ПГИ-1000" not in mass.section


def test_a_page_title_with_only_sub_sections_under_it_stays_a_title_not_text_of_the_page_before():
    page = "-----\nГлавная\n{title}\n\nОписание\n{about}\n\n"
    dump = (page.format(title="Весы лабораторные ВК-300", about="Весы с дискретностью 0,001 г для лабораторий.")
            + page.format(title="Весы лабораторные ВК-600", about="Весы с дискретностью 0,01 г для склада."))
    kb = parse_bytes(dump.encode("utf-8"), "site.txt")
    assert [s.title for s in kb.sections] == ["Весы лабораторные ВК-300 / Описание", "Весы лабораторные ВК-600 / Описание"]
    assert not any("ВК-600" in p.text for p in kb.passages)  # the next page's title is not this page's text
