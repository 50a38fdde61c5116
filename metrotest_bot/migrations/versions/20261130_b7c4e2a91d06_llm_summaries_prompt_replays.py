"""calls.summary_source (LLM summaries); replay_runs.prompt, version_id nullable (prompt replays);
call_webhooks.target (CRM notes)

Revision ID: b7c4e2a91d06
Revises: 37438a947d54
Create Date: 2026-11-30 10:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7c4e2a91d06'
down_revision = '37438a947d54'
branch_labels = None
depends_on = None


def _replay_runs(version_nullable: bool, with_prompt: bool) -> sa.Table:
    """The table as it stands, for SQLite's copy-and-move (so `--sql` needs no live database)."""
    columns = [
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=version_nullable),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('progress', sa.Float(), nullable=False),
        sa.Column('n_questions', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('result', sa.JSON(), nullable=True),
    ]
    if with_prompt:
        columns.append(sa.Column('prompt', sa.Text(), nullable=True))
    return sa.Table(
        'replay_runs', sa.MetaData(), *columns,
        sa.ForeignKeyConstraint(['version_id'], ['kb_versions.id'], name='fk_replay_runs_version_id_kb_versions',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_replay_runs'),
        sa.Index('ix_replay_runs_version_id', 'version_id'),
    )


def upgrade():
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('summary_source', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_calls_summary_source'), ['summary_source'], unique=False)
    with op.batch_alter_table('call_webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target', sa.String(length=16), nullable=True))
    with op.batch_alter_table('replay_runs', schema=None, copy_from=_replay_runs(False, False)) as batch_op:
        batch_op.add_column(sa.Column('prompt', sa.Text(), nullable=True))
        batch_op.alter_column('version_id', existing_type=sa.Integer(), nullable=True)


def downgrade():
    op.execute("DELETE FROM replay_runs WHERE version_id IS NULL")
    with op.batch_alter_table('replay_runs', schema=None, copy_from=_replay_runs(True, True)) as batch_op:
        batch_op.alter_column('version_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('prompt')
    with op.batch_alter_table('call_webhooks', schema=None) as batch_op:
        batch_op.drop_column('target')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_summary_source'))
        batch_op.drop_column('summary_source')
