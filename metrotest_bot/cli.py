"""Registers each package's CLI commands on the app (`flask --help` lists them)."""
import click
from flask.cli import with_appcontext

from .extensions import db


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the tables (development; migrations are used where configured)."""
    db.create_all()
    click.echo("База данных готова.")


def init_app(app):
    from .admin.cli import create_admin_command
    from .crm.cli import crm_lookup_command
    from .rag.cli import ask_command, reindex_command

    app.cli.add_command(init_db_command)
    app.cli.add_command(reindex_command)
    app.cli.add_command(ask_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(crm_lookup_command)
