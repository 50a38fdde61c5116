"""calls.summary (post-call report), calls.duration_s index (sorting), call_webhooks outbox

Revision ID: 5e0c2b7d9a41
Revises: 6fbf074052e5
Create Date: 2026-11-30 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e0c2b7d9a41'
down_revision = '6fbf074052e5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'call_webhooks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_call_webhooks')),
    )
    with op.batch_alter_table('call_webhooks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_webhooks_call_id'), ['call_id'], unique=False)
        batch_op.create_index('ix_call_webhooks_due', ['status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('summary', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_calls_duration_s'), ['duration_s'], unique=False)


def downgrade():
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_duration_s'))
        batch_op.drop_column('summary')

    with op.batch_alter_table('call_webhooks', schema=None) as batch_op:
        batch_op.drop_index('ix_call_webhooks_due')
        batch_op.drop_index(batch_op.f('ix_call_webhooks_call_id'))

    op.drop_table('call_webhooks')
