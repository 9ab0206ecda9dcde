"""accounts, token owners and expiry, content approval, abbreviations per commune, audit address, emergency spoken text

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:00:00

Plain ADD COLUMNs (no batch copy of tables that others reference: see 0006). Content that exists before this
revision was on air already, so it is marked approved by "migration". The abbreviation table gets an id and a
commune: its rows are copied into the new shape as the district's list.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString
TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'user',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', STR(length=64), nullable=False),
        sa.Column('display_name', STR(length=200), nullable=False),
        sa.Column('password_hash', STR(), nullable=False),
        sa.Column('role', STR(), nullable=False),
        sa.Column('communes', STR(), nullable=True),
        sa.Column('disabled', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('last_login_at', TIME(), nullable=True),
        sa.Column('created_by', STR(), nullable=False, server_default='cli'),
        sa.Column('created_at', TIME(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_user_username'), 'user', ['username'], unique=True)

    if op.get_bind().dialect.name == 'sqlite':  # SQLite adds a column with its reference, but not a constraint
        op.execute(sa.text('ALTER TABLE apitoken ADD COLUMN owner_id INTEGER REFERENCES "user" (id)'))
    else:
        op.add_column('apitoken', sa.Column('owner_id', sa.Integer(), sa.ForeignKey('user.id'), nullable=True))
    op.add_column('apitoken', sa.Column('created_by', STR(), nullable=False, server_default='cli'))
    op.add_column('apitoken', sa.Column('expires_at', TIME(), nullable=True))
    op.add_column('apitoken', sa.Column('revoked_at', TIME(), nullable=True))
    op.create_index(op.f('ix_apitoken_owner_id'), 'apitoken', ['owner_id'], unique=False)

    op.add_column('auditentry', sa.Column('address', STR(), nullable=True))
    op.add_column('emergency', sa.Column('spoken_text', STR(), nullable=True))
    op.create_index(op.f('ix_emergency_spoken_text'), 'emergency', ['spoken_text'], unique=False)
    op.add_column('commune', sa.Column('approval_required', sa.Boolean(), nullable=False, server_default=sa.true()))

    for table in ('bulletin', 'announcement', 'programme'):
        op.add_column(table, sa.Column('approved_by', STR(), nullable=True))
        op.add_column(table, sa.Column('approved_at', TIME(), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET approved_by = 'migration', approved_at = created_at"))

    op.rename_table('abbreviation', 'abbreviation_0006')
    op.create_table(
        'abbreviation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('abbr', STR(length=40), nullable=False),
        sa.Column('commune_id', sa.Integer(), sa.ForeignKey('commune.id'), nullable=True),
        sa.Column('expansion', STR(length=200), nullable=False),
        sa.Column('updated_by', STR(), nullable=False),
        sa.Column('updated_at', TIME(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('abbr', 'commune_id', name='uq_abbreviation_abbr_commune'),
    )
    op.create_index(op.f('ix_abbreviation_abbr'), 'abbreviation', ['abbr'], unique=False)
    op.create_index(op.f('ix_abbreviation_commune_id'), 'abbreviation', ['commune_id'], unique=False)
    op.execute(sa.text("INSERT INTO abbreviation (abbr, commune_id, expansion, updated_by, updated_at) "
                       "SELECT abbr, NULL, expansion, updated_by, updated_at FROM abbreviation_0006"))
    op.drop_table('abbreviation_0006')


def downgrade() -> None:
    raise NotImplementedError("0007 is not reversible: restore the backup taken before upgrading")
