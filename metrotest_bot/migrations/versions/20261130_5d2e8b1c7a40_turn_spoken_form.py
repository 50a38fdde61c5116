"""turns.spoken: the speech form of a bot turn's text, as TTS read it

Revision ID: 5d2e8b1c7a40
Revises: 5e0c2b7d9a41
Create Date: 2026-11-30 07:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5d2e8b1c7a40'
down_revision = '5e0c2b7d9a41'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spoken', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_column('spoken')
