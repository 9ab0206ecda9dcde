"""enrolment codes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('enrolmentcode',
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('receiver_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['receiver_id'], ['receiver.id'], ),
    sa.PrimaryKeyConstraint('code_hash')
    )
    with op.batch_alter_table('enrolmentcode', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrolmentcode_receiver_id'), ['receiver_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('enrolmentcode', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrolmentcode_receiver_id'))

    op.drop_table('enrolmentcode')
