"""index tickets by lower-cased reporter address and creation time

The per-reporter limit counts this hour's tickets of one address, compared case-insensitively,
on every report; the index on the raw column could not serve ``lower(reporter_email)``, so the
count read every ticket of the hour and grew with an outage's volume.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tickets_reporter_lower_created", "tickets", [sa.text("lower(reporter_email)"), "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_reporter_lower_created", table_name="tickets")
