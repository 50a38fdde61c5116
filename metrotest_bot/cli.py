"""Registers each package's CLI commands on the app (`flask --help` lists them)."""
import click
from flask.cli import with_appcontext



@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the schema: the same migrations as `flask db upgrade`."""
    from flask_migrate import upgrade

    upgrade()
    click.echo("База данных готова.")


@click.command("voice-url")
@click.option("--host", default="HOST", help="The public host name the scenario connects to.")
@with_appcontext
def voice_url_command(host):
    """Print the call WebSocket URL with its token (for Voximplant's application storage)."""
    from flask import current_app

    click.echo(f"Call WebSocket: wss://{host}/voice/ws?token={current_app.config['VOICE_TOKEN']}")


def init_app(app):
    from .admin.cli import create_admin_command
    from .crm.cli import crm_lookup_command
    from .rag.cli import ask_command, reindex_command

    app.cli.add_command(init_db_command)
    app.cli.add_command(voice_url_command)
    app.cli.add_command(reindex_command)
    app.cli.add_command(ask_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(crm_lookup_command)
