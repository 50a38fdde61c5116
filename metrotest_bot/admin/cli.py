"""Placeholder: `flask create-admin` is written by the admin helper."""
import click


@click.command("create-admin")
@click.argument("username")
@click.option("--password")
def create_admin_command(username, password):
    raise click.ClickException("not implemented yet")
