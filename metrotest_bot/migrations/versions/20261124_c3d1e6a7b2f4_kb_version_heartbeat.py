"""kb_versions.heartbeat_at: the indexing job's last sign of life

Revision ID: c3d1e6a7b2f4
Revises: a18a92ba789d
Create Date: 2026-11-24 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3d1e6a7b2f4'
down_revision = 'a18a92ba789d'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('kb_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('kb_versions', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
