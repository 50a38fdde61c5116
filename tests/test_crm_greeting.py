"""Greeting a known caller by name and patronymic, and only by real names."""
import pytest

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.crm import CallerInfo, greeting_for, names
from metrotest_bot.voice.caller import caller_context
from metrotest_bot.rag.types import CallerContext

DEFAULT = BotSettings().greeting


def known(**kw):
    return CallerInfo(**kw).resolve_names()


def test_default_greeting_gets_name_and_patronymic():
    info = known(first_name="Иван", patronymic="Петрович", last_name="Сидоров")
    text = greeting_for(info, DEFAULT)
    assert text.startswith("Здравствуйте, Иван Петрович! Вы позвонили в компанию «Метротест».")
    assert text.count("Здравствуйте") == 1
    assert "Сидоров" not in text  # addressed by name and patronymic, not surname


def test_unknown_caller_gets_the_greeting_unchanged():
    assert greeting_for(None, DEFAULT) == DEFAULT
    assert greeting_for(CallerInfo(company="ООО «Ромашка»"), DEFAULT) == DEFAULT


@pytest.mark.parametrize("greeting, expected", [
    ("Добрый день! Метротест слушает.", "Добрый день, Иван Петрович! Метротест слушает."),
    ("Здравствуйте, вы позвонили в Метротест.", "Здравствуйте, Иван Петрович! Вы позвонили в Метротест."),
    ("Метротест, слушаю вас.", "Здравствуйте, Иван Петрович! Метротест, слушаю вас."),
    ("Здравствуйте", "Здравствуйте, Иван Петрович!"),
    ("", "Здравствуйте, Иван Петрович!"),
])
def test_other_greetings(greeting, expected):
    assert greeting_for(known(first_name="Иван", patronymic="Петрович"), greeting) == expected


def test_first_name_only():
    assert greeting_for(known(first_name="Ольга", last_name="Кузнецова"), "Здравствуйте!") == "Здравствуйте, Ольга!"


@pytest.mark.parametrize("kw, address", [
    ({"name": "Кузнецова Ольга Викторовна"}, "Ольга Викторовна"),
    ({"name": "Иван Петрович Сидоров"}, "Иван Петрович"),
    ({"first_name": "ИВАН ПЕТРОВИЧ"}, "Иван Петрович"),  # both typed into the first-name field
    ({"first_name": "Ольга", "last_name": "Кузнецова", "name": "Кузнецова Ольга Викторовна"}, "Ольга Викторовна"),
    ({"first_name": "Айгуль", "patronymic": "Рашитовна"}, "Айгуль Рашитовна"),
    ({"first_name": "иван"}, "Иван"),
])
def test_names_found(kw, address):
    assert known(**kw).address == address


@pytest.mark.parametrize("kw", [
    {"first_name": "Бухгалтерия"},
    {"first_name": "Склад"},
    {"first_name": "Иван (склад)"},
    {"name": "ООО Ромашка"},
    {"name": "Сидоров"},
    {"first_name": "Клиент 123"},
    {"name": "Менеджер закупок"},
])
def test_words_that_are_not_names_are_never_spoken(kw):
    info = known(**kw)
    assert info.address is None
    assert greeting_for(info, DEFAULT) == DEFAULT


def test_clean_token_capitalizes_hyphenated():
    assert names.clean_token("анна-мария") == "Анна-Мария"
    assert names.clean_token("Иван1") is None


def test_caller_context_carries_facts_but_never_notes():
    info = known(name="Сидоров Иван Петрович", first_name="Иван", patronymic="Петрович", last_name="Сидоров",
                 company="ООО «УралСпецСтрой»", manager_name="Анна Смирнова", notes="не озвучивать")
    ctx = caller_context(info)
    assert isinstance(ctx, CallerContext)
    assert (ctx.name, ctx.company, ctx.manager) == ("Иван Петрович", "ООО «УралСпецСтрой»", "Анна Смирнова")
    assert "не озвучивать" not in repr(ctx)
    assert caller_context(None) is None
    assert caller_context(CallerInfo()) is None
