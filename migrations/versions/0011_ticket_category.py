"""ticket category

The support process classifies "severity, category": the filing job now stores the category it
decides (``category``, with the rule that fired in ``category_rule``) beside the severity, and the
sync job stores a category support changes in the tracker (``category_source`` = ``support``). An
email report keeps the address it was sent to (``recipient``), which the category rules read.

Existing tickets keep NULL in every new column rather than the default category: their issues were
filed without a category label or component, so "other" would be a claim the tracker does not
show. Statistics count them as ``other`` all the same, the status API says ``"category": null``,
and a category support later sets on such an issue is followed like any other.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipient', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('category', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('category_rule', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('category_source', sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('category_source')
        batch_op.drop_column('category_rule')
        batch_op.drop_column('category')
        batch_op.drop_column('recipient')
