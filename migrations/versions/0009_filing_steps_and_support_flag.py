"""filing steps and the support flag

Filing stores the issue key as soon as the tracker answers the create and puts the issue into its
sprint as a separate step: ``create_attempted_at`` marks a create whose outcome may be unknown,
``filed_at`` the end of filing. Tickets whose issue was deleted or can no longer be read are set
aside for support: ``support_reason`` and ``support_flagged_at``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bridge.adapters.store.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('create_attempted_at', bridge.adapters.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('filed_at', bridge.adapters.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('support_reason', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('support_flagged_at', bridge.adapters.store.models.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_support_reason'), ['support_reason'], unique=False)
    # Before this revision the issue key was stored only once filing had finished.
    op.execute("UPDATE tickets SET filed_at = updated_at WHERE issue_key IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_support_reason'))
        batch_op.drop_column('support_flagged_at')
        batch_op.drop_column('support_reason')
        batch_op.drop_column('filed_at')
        batch_op.drop_column('create_attempted_at')
