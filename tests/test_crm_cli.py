"""`flask crm-lookup`: an admin checks the CRM settings with one number."""
import json

from tests.support.apps import dispose, make_app
from tests.support.fake_crm import BITRIX_CONTACT_PHONE, UNKNOWN_PHONE


def test_lookup_prints_caller_and_greeting(fake_crm, tmp_path, database_url):
    app = make_app(tmp_path, database_url, **fake_crm.settings("bitrix24"))
    try:
        runner = app.test_cli_runner()
        out = runner.invoke(args=["crm-lookup", "8 (912) 345-67-89"]).output
        assert "CRM: bitrix24, номер +79123456789" in out
        assert "Обращение: Иван Петрович" in out and "Компания: ООО «УралСпецСтрой»" in out
        assert "Приветствие: Здравствуйте, Иван Петрович!" in out

        data = json.loads(runner.invoke(args=["crm-lookup", "--json", BITRIX_CONTACT_PHONE]).output)
        assert data["caller"]["manager_phone"] == "+73432000006" and data["number"] == BITRIX_CONTACT_PHONE

        assert "не найден" in runner.invoke(args=["crm-lookup", UNKNOWN_PHONE]).output
    finally:
        dispose(app)


def test_lookup_without_crm(tmp_path, database_url):
    app = make_app(tmp_path, database_url, CRM_KIND=None)
    try:
        assert "CRM не настроена" in app.test_cli_runner().invoke(args=["crm-lookup", "+79123456789"]).output
    finally:
        dispose(app)
