"""`flask create-admin USERNAME [--password P]`: create an admin, or set a new password."""
import click
from flask.cli import with_appcontext
from sqlalchemy import select

from ..database import needs_schema
from ..extensions import db
from ..models import AdminUser
from . import sessions
from .passwords import policy_error


@click.command("create-admin")
@click.argument("username")
@click.option("--password", help="Пароль; без этого ключа он запрашивается дважды.")
@with_appcontext
@needs_schema  # a fresh install may create its admin before the first start
def create_admin_command(username, password):
    """Create an admin user for /logs-ui/ (or reset an existing one's password)."""
    username = username.strip()
    if not username or len(username) > 64:
        raise click.BadParameter("имя пользователя: от 1 до 64 символов.", param_hint="USERNAME")
    if password is None:
        password = click.prompt("Пароль", hide_input=True, confirmation_prompt="Повторите пароль")
    error = policy_error(password, username)
    if error:
        raise click.ClickException(error)
    user = db.session.scalar(select(AdminUser).where(AdminUser.username == username))
    created = user is None
    if created:
        user = AdminUser(username=username)
        db.session.add(user)
    user.set_password(password)
    ended = 0 if created else sessions.end_all(user.id)  # a reset password must also shut out whoever had the old one
    db.session.commit()
    click.echo(f"Администратор {username} {'создан' if created else 'получил новый пароль'}.")
    if ended:
        click.echo(f"Открытые сеансы этого пользователя завершены: {ended}.")
