"""calls.worker: the process that served the call (a worker closes a dead neighbour's calls at start);
calls.summary_claimed_at: when a summarizer took the call (a stale claim is taken again)

Revision ID: c9a1d3e5f7b2
Revises: b7c4e2a91d06
Create Date: 2026-11-30 11:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c9a1d3e5f7b2'
down_revision = 'b7c4e2a91d06'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column('summary_claimed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('summary_claimed_at')
        batch_op.drop_column('worker')
