"""Small KB files for the admin KB tests (each says something the sample KB does not) and the stores' tests."""
from __future__ import annotations

from metrotest_bot.bot_settings import get_bot_settings
from metrotest_bot.rag import get_engine

QUESTION = "Сколько стоит выезд инженера в Нижний Тагил?"


def kb_text(price: str) -> str:
    """A three-section KB; `price` is the fact a call's answer must carry."""
    return (
        "Выезд инженера\n\n"
        f"Стоимость выезда инженера в Нижний Тагил составляет {price} рублей. "
        "Инженер приезжает в течение двух рабочих дней после заявки.\n\n"
        "Калибровка датчиков\n\n"
        "Калибровку датчиков силы мы проводим в собственной лаборатории в Екатеринбурге. "
        "Срок калибровки составляет пять рабочих дней.\n\n"
        "Гарантия\n\n"
        "Гарантия на испытательные машины составляет двадцать четыре месяца с даты ввода в эксплуатацию. "
        "Гарантийный ремонт выполняется бесплатно.\n"
    )


# Three sections, one fact each: the stores' contract and the semantic side's tests.
THREE_SECTIONS = """=== Доставка ===
Доставка по Екатеринбургу бесплатная. В другие города отправляем транспортной компанией.
=== Прессы ===
Пресс ПИ-2000 на 2000 кН стоит от 920 000 рублей с НДС.
=== Режим работы ===
Офис работает по будням с 8:30 до 17:30.
"""

PRICE_A = "7 500"  # in the cp1251 .txt
PRICE_B = "9 900"  # in the UTF-8 .md


def spoken_answer(app, question: str = QUESTION) -> str:
    """What a call would hear to `question` from the app's current KB."""
    with app.app_context():
        stream = get_engine().answer(question, get_bot_settings())
        try:
            return stream.text()
        finally:
            stream.close()


def kb_a_cp1251() -> bytes:
    return kb_text(PRICE_A).encode("cp1251")


def kb_b_markdown() -> bytes:
    text = kb_text(PRICE_B)
    for title in ("Выезд инженера", "Калибровка датчиков", "Гарантия"):
        text = text.replace(title + "\n", "## " + title + "\n", 1)
    return text.encode("utf-8")


# An executable's first bytes, a binary blob posing as text, a PDF that is not one.
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 4
BINARY_TXT = bytes(range(256)) * 16
FAKE_PDF = "Это не PDF, а текст.".encode("utf-8")
