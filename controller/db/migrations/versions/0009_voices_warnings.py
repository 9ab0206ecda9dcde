"""voices: which engine spoke an emergency, its event type, pre-recorded warnings per event type, an
announcement's key instruction read again at the end

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 00:00:00

Plain ADD COLUMNs and a new table (no batch copy of tables that others reference: see 0006).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'warningrecording',
        sa.Column('event_type', STR(length=40), nullable=False),
        sa.Column('media_sha256', STR(), nullable=False),
        sa.Column('source_filename', STR(), nullable=True),
        sa.Column('created_by', STR(), nullable=False),
        sa.Column('created_at', TIME(), nullable=False),
        sa.ForeignKeyConstraint(['media_sha256'], ['mediafile.sha256']),
        sa.PrimaryKeyConstraint('event_type'),
    )
    op.create_index(op.f('ix_warningrecording_media_sha256'), 'warningrecording', ['media_sha256'], unique=False)
    op.add_column('emergency', sa.Column('engine', STR(), nullable=True))
    op.add_column('emergency', sa.Column('event_type', STR(length=40), nullable=True))
    op.add_column('announcement', sa.Column('key_instruction', STR(length=500), nullable=True))


def downgrade() -> None:
    op.drop_column('announcement', 'key_instruction')
    op.drop_column('emergency', 'event_type')
    op.drop_column('emergency', 'engine')
    op.drop_index(op.f('ix_warningrecording_media_sha256'), table_name='warningrecording')
    op.drop_table('warningrecording')
