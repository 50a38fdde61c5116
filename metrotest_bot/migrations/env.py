"""Alembic environment for Flask-Migrate: the app's engine and models' metadata."""
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config

# disable_existing_loggers=False: migrations run inside the app (tests, CLI) must not mute its loggers.
if config.config_file_name:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db

# Options shared by autogenerate (flask db migrate), `flask db check` and tests/test_migrations.py.
CONFIGURE_OPTS = {
    # SQLite cannot ALTER most things: batch mode copies the table; on PostgreSQL it is plain ALTER.
    "render_as_batch": True,
    "compare_type": True,
}


def get_engine():
    return target_db.engine


config.set_main_option("sqlalchemy.url", get_engine().url.render_as_string(hide_password=False).replace("%", "%%"))


def run_migrations_offline():
    """`flask db upgrade --sql`: print the SQL instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=target_db.metadata,
        literal_binds=True, **CONFIGURE_OPTS,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        # `flask db migrate` with no model change writes no empty revision.
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = {**CONFIGURE_OPTS, **current_app.extensions["migrate"].configure_args}
    conf_args.setdefault("process_revision_directives", process_revision_directives)

    with get_engine().connect() as connection:
        context.configure(connection=connection, target_metadata=target_db.metadata, **conf_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
