"""Offline answers: «name — value» lists cut to the item asked about, a section's opening for a
question naming its topic (the company itself among them), derived words, the topic gate.
Unit tests on the pieces, then the engine over a KB written here and over the demo site KB."""
import pytest

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import analysis, get_engine, query
from metrotest_bot.rag.offline import focus_list_item, parse_dash_list
from metrotest_bot.rag.stats import KBStats
from haystack import Document
from tests.support.apps import dispose, make_app
from tests.support.databases import fresh_database

PRICES = "Цены: ПИ-500 — от 640 000 рублей, ПИ-1000 — от 780 000 рублей, ПИ-2000 — от 920 000 рублей с НДС."
TERMS = "Сроки доставки: Москва и Санкт-Петербург — 5–7 дней; Новосибирск — 4–6 дней; Казань — 3–4 дня."
NO_HEAD = "Пресс для бетона — от 12 000 рублей, твердомер — от 6 500 рублей."


def focus(sentence, question):
    return focus_list_item(sentence, query.analyze_question(question))


@pytest.mark.parametrize("sentence,question,expected", [
    (PRICES, "сколько стоит пресс на тысячу килоньютон", "Цены: ПИ-1000 — от 780 000 рублей с НДС."),
    (PRICES, "почём пи пятьсот", "Цены: ПИ-500 — от 640 000 рублей с НДС."),
    (PRICES, "цена ПИ-2000", "Цены: ПИ-2000 — от 920 000 рублей с НДС."),
    (PRICES, "сколько стоят пи-500 и пи-2000", "Цены: ПИ-500 — от 640 000 рублей, ПИ-2000 — от 920 000 рублей с НДС."),
    (TERMS, "сколько ехать до казани", "Сроки доставки: Казань — 3–4 дня."),
    (TERMS, "доставка в питер", TERMS),  # no item named (Санкт-Петербург is not «питер»): the whole list
    (NO_HEAD, "почём поверка твердомера", "Твердомер — от 6 500 рублей."),
    (PRICES, "сколько стоят прессы", PRICES),
])
def test_a_list_is_cut_to_the_item_the_question_names(sentence, question, expected):
    assert focus(sentence, question) == expected


@pytest.mark.parametrize("sentence", [
    # dashes of prose, not a list of items
    "Типовые запчасти — датчики силы, захваты, вкладыши, предохранители — есть на складе.",
    "Гарантийный срок на машины, прессы и копры — 24 месяца, но не более 30 месяцев с даты отгрузки.",
    "Пресс ПИ-2000 — самый популярный у лабораторий.",
])
def test_sentences_that_are_not_lists_stay_whole(sentence):
    assert parse_dash_list(sentence) is None
    assert focus(sentence, "сколько стоит машина гим") == sentence


def test_an_item_that_depends_on_the_first_one_is_not_spoken_alone():
    sentence = "Срок изготовления универсальных машин УИМ и копров — от 45 до 60 дней, гидравлических машин ГИМ — от 90 дней."
    assert focus(sentence, "сколько ждать гидравлическую машину гим") == sentence
    assert focus(sentence, "сколько делают уим") == "Срок изготовления универсальных машин УИМ и копров — от 45 до 60 дней."


def test_list_parts():
    parsed = parse_dash_list(PRICES)
    assert parsed.head == "Цены:" and parsed.tail == " с НДС" and parsed.end == "."
    assert parsed.items[1] == "ПИ-1000 — от 780 000 рублей"


def stats_of(*words):
    return KBStats([Document(id=str(i), content=w, meta={"section": "", "position": i}) for i, w in enumerate(words)])


@pytest.mark.parametrize("question_word,kb_word", [
    ("отгрузить", "отгружаться"),  # з ~ ж
    ("повредить", "повреждение"),  # д ~ ж
    ("обеденный", "обед"),  # a whole word inside a longer one
    ("платный", "бесплатный"),  # negating prefix
    ("продлить", "продление"),
])
def test_derived_words_are_related(question_word, kb_word):
    assert kb_word in stats_of(kb_word, "пресс").related(question_word)


@pytest.mark.parametrize("question_word,kb_word", [("пицца", "поверка"), ("телевизор", "телефон"), ("прием", "прибор")])
def test_unrelated_words_are_not(question_word, kb_word):
    assert kb_word not in stats_of(kb_word).related(question_word)


def test_company_questions_mark_the_company_section():
    assert analysis.section_markers("О компании") == [analysis.M_SELF]
    assert analysis.section_markers("О нас") == [analysis.M_SELF]
    assert analysis.section_markers("Кто мы") == [analysis.M_SELF]
    assert analysis.section_markers("Доставка") == []
    for question in ("расскажите о себе", "кто вы такие", "чем вы занимаетесь", "что у вас за фирма"):
        assert analysis.M_SELF in query.analyze_question(question).soft_markers, question


# --- the engine over a KB of its own ------------------------------------------------------

OWN_KB = """=== О нас ===
ООО «Испытатель» делает климатические камеры и стенды для испытаний электроники. Работаем с 1998 года.
Наши камеры стоят в лабораториях тридцати стран.

=== Камеры ===
Камеры КТ-100, КТ-200 и КТ-400 работают от минус 70 до плюс 180 градусов. Компания собирает их в Самаре.
Стоимость: КТ-100 — 450 000 рублей, КТ-200 — 610 000 рублей, КТ-400 — 990 000 рублей без НДС.

=== Доставка ===
Доставка по Самаре бесплатная. В другие города отправляем транспортной компанией за 3–5 дней.
Заказать камеру можно по телефону 8 800 000-00-00 или на почте sales@example.test.
"""


def kb_app(tmp_path_factory, name, text):
    """An app answering from a KB written here (a generator: the fixtures yield from it)."""
    tmp = tmp_path_factory.mktemp(name)
    kb = tmp / "kb.txt"
    kb.write_text(text, encoding="utf-8")
    with fresh_database(tmp) as url:
        app = make_app(tmp / "data", url, KB_PATH=kb)
        yield app
        dispose(app)


@pytest.fixture(scope="module")
def own_kb_app(tmp_path_factory):
    yield from kb_app(tmp_path_factory, "own_kb", OWN_KB)


def ask(app, question):
    with app.app_context():
        stream = get_engine().answer(question, BotSettings())
        return stream, stream.text()


@pytest.mark.parametrize("question", ["расскажите о компании", "что вы за фирма", "расскажите о себе",
                                      "кто вы такие", "чем занимается ваша компания", "что вы производите",
                                      "а что вы продаете"])
def test_company_questions_are_answered_from_the_company_section(own_kb_app, question):
    stream, text = ask(own_kb_app, question)
    assert stream.answered, question
    # its opening, not another passage that mentions «компания»
    assert text.startswith("ООО «Испытатель» делает климатические камеры")


def test_a_question_naming_a_section_gets_its_opening(own_kb_app):
    _, text = ask(own_kb_app, "расскажите про доставку")
    assert text.startswith("Доставка по Самаре бесплатная.")


def test_price_list_answer_speaks_the_model_asked_about(own_kb_app):
    _, text = ask(own_kb_app, "сколько стоит камера кт двести")
    assert text == "Стоимость: КТ-200 — 610 000 рублей без НДС."


def test_quantity_finds_its_unit(own_kb_app):
    stream, text = ask(own_kb_app, "до какой температуры работают камеры")
    assert stream.answered and "180 градусов" in text


@pytest.mark.parametrize("question", ["можно заказать пиццу", "где купить телевизор", "какой курс доллара",
                                      "как приготовить борщ", "сколько стоит билет в кино"])
def test_only_the_action_in_the_kb_is_not_enough(own_kb_app, question):
    stream, _ = ask(own_kb_app, question)
    assert stream.answered is False, question


def test_a_kb_word_said_differently_still_answers(own_kb_app):
    stream, text = ask(own_kb_app, "доставка в самару платная")
    assert stream.answered and "бесплатная" in text


# --- the demo site KB ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site_app(tmp_path_factory):
    from tests.support.apps import SHARED_KB

    if not SHARED_KB.exists():
        pytest.skip(f"{SHARED_KB} is not here (the demo KB lives in ../shared)")
    tmp = tmp_path_factory.mktemp("site_kb")
    with fresh_database(tmp) as url:
        app = make_app(tmp / "data", url, KB_PATH=SHARED_KB)
        yield app
        dispose(app)


@pytest.mark.parametrize("question", ["расскажите о компании", "чем занимается ваша компания", "что вы за компания",
                                      "расскажите о себе"])
def test_site_company_questions(site_app, question):
    stream, text = ask(site_app, question)
    assert stream.answered and "российский производитель испытательного оборудования" in text


@pytest.mark.parametrize("question,expected,not_expected", [
    ("сколько стоит пресс на тысячу килоньютон", "ПИ-1000 — от 780 000 рублей с НДС", "ПИ-500"),
    ("сколько стоит поверка твердомера", "твердомер — от 6 500 рублей", "пресс для бетона"),
    ("вы доставляете в казань", "Казань — 3–4 дня", "Москва"),
])
def test_site_price_and_term_lists(site_app, question, expected, not_expected):
    _, text = ask(site_app, question)
    assert expected in text and not_expected not in text


@pytest.mark.parametrize("question", ["какой курс доллара", "как приготовить борщ", "где купить телевизор",
                                      "какая завтра погода в екатеринбурге", "продаете ли вы автомобили",
                                      "сколько стоит билет в кино", "можно заказать пиццу"])
def test_site_off_topic_is_refused(site_app, question):
    stream, _ = ask(site_app, question)
    assert stream.answered is False


SCALES_KB = """=== Ремонт ===
Ремонтируем лабораторные и торговые весы любых марок. Гарантия на ремонт весов — 6 месяцев.

=== Поверка ===
Поверка весов занимает 3 рабочих дня, свидетельство выдаём в день готовности.
"""


@pytest.fixture(scope="module")
def scales_app(tmp_path_factory):
    yield from kb_app(tmp_path_factory, "scales_kb", SCALES_KB)


@pytest.mark.parametrize("question, unit_needed", [
    ("какая гарантия после ремонта весов", False),  # «весов»: of «весы», the instrument, or of «вес»
    ("сколько весят весы", True),  # «весить» asks a weight: a passage must give it in кг or граммах
    ("какой вес у весов", True),
])
def test_only_a_quantity_asked_needs_its_unit_in_a_passage(scales_app, question, unit_needed):
    assert quantity_ok(scales_app, question) == (0.0 if unit_needed else 1.0), question


def quantity_ok(app, question) -> float:
    """The gate's unit check for the question: 1.0 when no unit is asked or a top passage holds it."""
    from metrotest_bot.rag.scoring import features

    with app.app_context():
        engine = get_engine()
        found, _ = engine.search(question)
        return features(found.query, found.retrieved.documents, engine.current().stats)["quantity_ok"]


SIGNS_KB = """=== Климатическая камера КК-800 ===
Объём 800 литров, температура от −40 до +100 °C, влажность от 20 до 98 %.

=== Твердомер ТРС-45 ===
Испытательные нагрузки: 15, 30, 45 кгс. Твердомер поставляется с комплектом наконечников.
"""


@pytest.fixture(scope="module")
def signs_app(tmp_path_factory):
    yield from kb_app(tmp_path_factory, "signs_kb", SIGNS_KB)


@pytest.mark.parametrize("question, unit_held", [
    ("до какой температуры греет камера", True),  # «+100 °C»: the sign is the unit
    ("какие нагрузки у твердомера", True),  # a force in кгс, not only in кН
    ("какая мощность у камеры", False),  # no passage gives a power: кВт, Вт
])
def test_a_unit_written_as_a_sign_or_in_kgf_is_held(signs_app, question, unit_held):
    assert quantity_ok(signs_app, question) == (1.0 if unit_held else 0.0), question


# Two product pages of a site dump, each with its own «Описание»: the specs passage names no product itself.
PAGES_KB = """# Твердомер Роквелла ТР-150

Цена: 184 000 ₽ с НДС. Гарантия — 24 месяца.

Описание

ТР-150 — настольный твердомер с механическим нагружением грузами, прост в обслуживании и подходит для цехов.

Габариты — 520×220×720 мм. Масса — 65 кг. Электропитание не требуется.

# Твердомер Бринелля ТБ-3000

Цена: 342 000 ₽ с НДС. Гарантия — 24 месяца.

Описание

ТБ-3000 — стационарный твердомер Бринелля с электромеханическим нагружением для чёрных и цветных металлов.

Габариты — 700×270×850 мм. Масса — 135 кг. Потребляемая мощность — 180 Вт.
"""


@pytest.fixture(scope="module")
def pages_app(tmp_path_factory):
    yield from kb_app(tmp_path_factory, "pages_kb", PAGES_KB)


@pytest.mark.parametrize("question, mass, other", [
    ("сколько весит тэ бэ три тысячи", "135 кг", "65 кг"),
    ("сколько весит тэ эр сто пятьдесят", "65 кг", "135 кг"),
])
def test_a_sub_section_shared_by_pages_answers_for_its_own_page(pages_app, question, mass, other):
    stream, text = ask(pages_app, question)
    assert stream.answered and mass in text and other not in text, text
