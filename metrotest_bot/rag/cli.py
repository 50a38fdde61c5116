"""Placeholder: `flask reindex` and `flask ask` are written by the RAG helper."""
import click


@click.command("reindex")
def reindex_command():
    raise click.ClickException("not implemented yet")


@click.command("ask")
def ask_command():
    raise click.ClickException("not implemented yet")
