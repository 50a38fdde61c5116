"""Russian analysis: word forms, spoken numbers, units, colloquial phrasing."""
import pytest

from metrotest_bot.rag import analysis, query
from metrotest_bot.rag.numbers import join_number_words
from metrotest_bot.rag.stores import es_index_settings, es_mapping


@pytest.mark.parametrize("words,expected", [
    (["два", "тысяча"], ["2000"]),
    (["пятьдесят"], ["50"]),
    (["полтора", "тысяча", "рубль"], ["1500", "рубль"]),
    (["девятьсот", "двадцать", "тысяча"], ["920000"]),
    (["сорок", "четвертый", "закон"], ["44", "закон"]),
    (["5", "тысяча"], ["5000"]),
    (["пресс"], ["пресс"]),
    # digit groups read one after another, as a model number is read on the phone (ИР 5057)
    (["пятьдесят", "пятьдесят", "семь"], ["5057"]),
    # but single digits in a row are a range, never one number nor a sum
    (["два", "три", "день"], ["2", "3", "день"]),
    (["пятнадцать", "пять"], ["15", "5"]),
    (["двадцать", "пять", "тысяча", "триста"], ["25300"]),
    # compound ordinals: «пресс пи двухтысячный»
    (["пи", "двухтысячный"], ["пи", "2000"]),
    (["трехсотый"], ["300"]),
])
def test_number_words(words, expected):
    assert join_number_words(words) == expected


def test_spelled_unit_after_a_number_is_the_unit():
    spoken = set(query.analyze_question("пресс на пятьсот кэ эн сколько стоит").weights())
    written = set(analysis.index_terms("ПИ-500 (500 кН)"))
    assert {"500", "кн"} <= spoken & written
    assert analysis.items("копёр на триста дэ жэ")[-1] == ("дж",)
    # letters before the number still spell a model code
    assert analysis.items("кэ эм триста кэ эн")[0][0] == "км-300"


def test_word_forms_meet_in_one_lemma():
    forms = ["доставка", "доставку", "доставки", "доставкой"]
    assert {analysis.content_terms(f)[0] for f in forms} == {"доставка"}


def test_spoken_load_meets_the_written_one():
    spoken = set(query.analyze_question("машина на пятьдесят килоньютон").weights())
    written = set(analysis.index_terms("УИМ-50 (50 кН)"))
    assert {"50", "кн"} <= spoken & written


def test_grouped_digits_are_one_term():
    assert "1250000" in analysis.index_terms("от 1 250 000 рублей")
    assert "1250000" in analysis.index_terms("от 1250000 рублей")


def test_ambiguous_forms_index_every_reading():
    assert {"пресс", "пресса"} <= set(analysis.index_terms("прессы"))


@pytest.mark.parametrize("question,marker", [
    ("почём пресс", analysis.M_PRICE),
    ("дайте телефон бухгалтерии", analysis.M_PHONE),
    ("до скольки вы работаете", analysis.M_HOURS),
    ("как долго ждать доставку", analysis.M_TERM),
    ("где вы находитесь", analysis.M_ADDRESS),
])
def test_questions_ask_for_a_kind_of_fact(question, marker):
    assert marker in query.analyze_question(question).markers


def test_passages_carry_markers_of_their_facts():
    terms = analysis.index_terms("Отдел продаж: +7 (343) 000-12-10, sales@metrotest.example, с 8:30, от 98 000 рублей.")
    assert {analysis.M_PHONE, analysis.M_EMAIL, analysis.M_HOURS, analysis.M_PRICE} <= set(terms)


def test_filler_words_are_not_content():
    assert query.analyze_question("алло девушка здравствуйте скажите пожалуйста").is_empty()


def test_elasticsearch_mapping_has_a_russian_analyzer():
    settings, mapping = es_index_settings(), es_mapping(None)
    analyzer = settings["analysis"]["analyzer"][mapping["properties"]["content"]["analyzer"]]
    filters = {f: settings["analysis"]["filter"][f] for f in analyzer["filter"] if f in settings["analysis"]["filter"]}
    assert {"type": "stemmer", "language": "russian"} in filters.values()
    assert mapping["properties"]["text"]["analyzer"] == "russian"
    assert settings["index.query.default_field"] == ["content"]


def test_nouns_made_from_a_verb_are_related():
    """обучить ~ обучение, изготавливать ~ изготовление (-ива- and its о→а undone), оплачивать ~ оплата."""
    from haystack import Document

    from metrotest_bot.rag.stats import KBStats

    stats = KBStats([Document(content="обучение персонал"), Document(content="срок изготовление"),
                     Document(content="оплата счет")])
    assert "обучение" in stats.related("обучить")
    assert "изготовление" in stats.related("изготавливать")
    assert "оплата" in stats.related("оплачивать")
    assert stats.related("стоить") == ()


def test_what_callers_say_of_their_own_side_is_context():
    from metrotest_bot.rag.query import analyze_question

    slots = {s.lemmas[0]: s for s in analyze_question("у нас лаборантка новая, сколько стоит обучение").slots}
    assert slots["лаборантка"].context and not slots["обучение"].context
    # no split into parts: nothing is context
    assert not any(s.context for s in analyze_question("у нас лаборантка новая").slots)
    # ASR text without punctuation is split before the question word
    slots = {s.lemmas[0]: s for s in analyze_question("у нас в тюмени машина встала через сколько приедет инженер").slots}
    assert slots["тюмень"].context and not slots["инженер"].context


def test_where_to_send_asks_for_an_address():
    from metrotest_bot.rag.analysis import M_EMAIL
    from metrotest_bot.rag.query import analyze_question

    assert M_EMAIL in analyze_question("я сервисный инженер, куда резюме отправить").markers
    assert M_EMAIL not in analyze_question("куда вы доставляете").markers


def test_a_diminutive_finds_its_base_word():
    """Callers say «печка», «телефончик», «водичка»; the KB says «печь», «телефон», «вода»."""
    from haystack import Document

    from metrotest_bot.rag.stats import KBStats

    stats = KBStats([Document(content="муфельный печь"), Document(content="телефон бухгалтерия"),
                     Document(content="анализ вода"), Document(content="печать счет")])
    assert stats.related("печка") == ("печь",)
    assert "телефон" in stats.related("телефончик")
    assert "вода" in stats.related("водичка")
    assert "печать" not in stats.related("печка")  # a longer word on the same letters is another word


def test_a_passage_opening_with_a_label_is_about_it():
    """«ПМ-8. Объём камеры 8 литров. Цена — 76 000 рублей.»: the price sentence is about the ПМ-8."""
    from haystack import Document

    from metrotest_bot.rag import analysis
    from metrotest_bot.rag.stats import KBStats

    text = "ПМ-8. Объём камеры 8 литров. Цена — 76 000 рублей."
    plain = "Печи отгружаются со склада. Цена — 76 000 рублей."
    stats = KBStats([Document(id="a", content=" ".join(analysis.index_terms(text)), meta={"text": text}),
                     Document(id="b", content=" ".join(analysis.index_terms(plain)), meta={"text": plain})])
    assert "пм-8" in stats.label_terms("a", text)
    assert stats.label_terms("b", plain) == frozenset()
