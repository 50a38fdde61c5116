"""answer reviews, test questions, replay runs, kb_versions.held_reason

Revision ID: 37438a947d54
Revises: 5d2e8b1c7a40
Create Date: 2026-11-30 08:14:12.688660

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '37438a947d54'
down_revision = '5d2e8b1c7a40'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('replay_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('n_questions', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['kb_versions.id'], name=op.f('fk_replay_runs_version_id_kb_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replay_runs'))
    )
    with op.batch_alter_table('replay_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_replay_runs_version_id'), ['version_id'], unique=False)

    op.create_table('answer_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('turn_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('correct_fact', sa.Text(), nullable=True),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answer_text', sa.Text(), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['turn_id'], ['turns.id'], name=op.f('fk_answer_reviews_turn_id_turns'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_answer_reviews')),
    sa.UniqueConstraint('turn_id', name=op.f('uq_answer_reviews_turn_id'))
    )
    with op.batch_alter_table('answer_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_answer_reviews_answered_at'), ['answered_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_answer_reviews_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_answer_reviews_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_answer_reviews_verdict'), ['verdict'], unique=False)

    op.create_table('test_questions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answerable', sa.Boolean(), nullable=False),
    sa.Column('correct_fact', sa.Text(), nullable=True),
    sa.Column('review_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['review_id'], ['answer_reviews.id'], name=op.f('fk_test_questions_review_id_answer_reviews'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_questions')),
    sa.UniqueConstraint('review_id', name=op.f('uq_test_questions_review_id'))
    )
    with op.batch_alter_table('kb_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_reason', sa.Text(), nullable=True))



def downgrade():
    with op.batch_alter_table('kb_versions', schema=None) as batch_op:
        batch_op.drop_column('held_reason')

    op.drop_table('test_questions')
    with op.batch_alter_table('answer_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_answer_reviews_verdict'))
        batch_op.drop_index(batch_op.f('ix_answer_reviews_created_at'))
        batch_op.drop_index(batch_op.f('ix_answer_reviews_call_id'))
        batch_op.drop_index(batch_op.f('ix_answer_reviews_answered_at'))

    op.drop_table('answer_reviews')
    with op.batch_alter_table('replay_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_replay_runs_version_id'))

    op.drop_table('replay_runs')
