"""voice.intents: requests for a person and goodbyes, by lemmas; ordinary questions stay questions."""
import pytest

from metrotest_bot.voice.intents import GOODBYE, TRANSFER, detect


@pytest.mark.parametrize("text", [
    "соедините с оператором",
    "Соедините меня, пожалуйста, с оператором",
    "хочу поговорить с человеком",
    "Можно поговорить с живым человеком?",
    "позовите менеджера",
    "Позовите, пожалуйста, менеджера.",
    "переключите на специалиста",
    "свяжите меня с отделом продаж",
    "мне нужен менеджер",
    "дайте оператора",
    "можно инженера",
    "оператор",
    "Оператора!",
    "живой человек",
    "менеджера пожалуйста",
])
def test_asks_for_a_person(text):
    assert detect(text) == TRANSFER


@pytest.mark.parametrize("text", [
    "спасибо, до свидания",
    "Спасибо, до свидания!",
    "досвидания",
    "Всего доброго",
    "ладно, спасибо, всего хорошего",
    "спасибо пока",
])
def test_says_goodbye(text):
    assert detect(text) == GOODBYE


@pytest.mark.parametrize("text", [
    "Сколько стоит доставка?",
    "не надо оператора",
    "не соединяйте пока",
    "хочу купить пресс на десять человек",
    "сколько человек работает в сервисном центре",
    "У меня машина на 10 человек",
    "позовите десять человек на приёмку",
    "Какой график работы у менеджеров?",
    "спасибо",
    "пока не надо, расскажите про гарантию",
    "а пока расскажите про поверку",
    "",
    "...",
])
def test_ordinary_utterances(text):
    assert detect(text) is None
