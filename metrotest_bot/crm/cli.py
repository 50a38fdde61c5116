"""`flask crm-lookup NUMBER`: check the CRM settings by looking up one number, as a call would."""
import json
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import phones
from ..bot_settings import get_bot_settings
from ..database import needs_schema
from . import clear_cache, greeting_for, lookup_caller


@click.command("crm-lookup")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="Print the CRM answer as JSON.")
@with_appcontext
@needs_schema
def crm_lookup_command(number, as_json):
    """Look a caller's number up in the CRM (CRM_KIND, CRM_URL, CRM_TOKEN, CRM_TIMEOUT_MS)."""
    cfg = current_app.config
    kind = cfg["CRM_KIND"] or ""
    phone = phones.normalize_phone(number)
    clear_cache()  # ask the CRM itself, not this process's memory
    started = time.monotonic()
    info = lookup_caller(number)
    elapsed_ms = (time.monotonic() - started) * 1000
    if as_json:
        click.echo(json.dumps({"kind": kind or None, "number": phone, "elapsed_ms": round(elapsed_ms, 1),
                               "caller": info.to_dict() if info else None}, ensure_ascii=False, indent=2))
        return
    if not kind:
        click.echo("CRM не настроена (CRM_KIND не задан).")
        return
    if not phone:
        click.echo(f"«{number}» — не номер телефона, который можно искать.")
        return
    click.echo(f"CRM: {kind}, номер {phone}, {elapsed_ms:.0f} мс (бюджет {cfg['CRM_TIMEOUT_MS']} мс)")
    if info is None:
        click.echo("Звонящий не найден, или CRM не ответила вовремя (подробности выше, в журнале).")
        return
    for label, value in (("Имя", info.name), ("Обращение", info.address), ("Компания", info.company),
                         ("Менеджер", info.manager_name), ("Телефон менеджера", info.manager_phone),
                         ("Заметки (не озвучиваются)", info.notes)):
        if value:
            click.echo(f"{label}: {value}")
    click.echo(f"Приветствие: {greeting_for(info, get_bot_settings().greeting)}")
