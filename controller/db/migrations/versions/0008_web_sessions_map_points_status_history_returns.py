"""staff web UI: web sessions, map points of villages and receivers, receivers' status history, content sent back

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 18:30:00

Plain ADD COLUMNs and new tables (no batch copy of tables that others reference: see 0006).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'websession',
        sa.Column('id', STR(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('csrf', STR(), nullable=False),
        sa.Column('created_at', TIME(), nullable=False),
        sa.Column('last_seen_at', TIME(), nullable=False),
        sa.Column('expires_at', TIME(), nullable=False),
        sa.Column('address', STR(), nullable=True),
        sa.Column('user_agent', STR(length=300), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_websession_user_id'), 'websession', ['user_id'], unique=False)
    op.create_table(
        'receiverstatusevent',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('receiver_id', STR(length=63), nullable=False),
        sa.Column('availability', STR(), nullable=False),
        sa.Column('at', TIME(), nullable=False),
        sa.ForeignKeyConstraint(['receiver_id'], ['receiver.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_receiverstatusevent_receiver_id'), 'receiverstatusevent', ['receiver_id'], unique=False)
    op.create_index(op.f('ix_receiverstatusevent_at'), 'receiverstatusevent', ['at'], unique=False)
    for table in ('village', 'receiver'):
        op.add_column(table, sa.Column('lat', sa.Float(), nullable=True))
        op.add_column(table, sa.Column('lon', sa.Float(), nullable=True))
    for table in ('bulletin', 'announcement', 'programme'):
        op.add_column(table, sa.Column('returned_by', STR(), nullable=True))
        op.add_column(table, sa.Column('returned_at', TIME(), nullable=True))
        op.add_column(table, sa.Column('returned_comment', STR(length=1000), nullable=True))


def downgrade() -> None:
    for table in ('bulletin', 'announcement', 'programme'):
        for column in ('returned_comment', 'returned_at', 'returned_by'):
            with op.batch_alter_table(table) as batch:
                batch.drop_column(column)
    for table in ('village', 'receiver'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('lon')
            batch.drop_column('lat')
    op.drop_index(op.f('ix_receiverstatusevent_at'), table_name='receiverstatusevent')
    op.drop_index(op.f('ix_receiverstatusevent_receiver_id'), table_name='receiverstatusevent')
    op.drop_table('receiverstatusevent')
    op.drop_index(op.f('ix_websession_user_id'), table_name='websession')
    op.drop_table('websession')
