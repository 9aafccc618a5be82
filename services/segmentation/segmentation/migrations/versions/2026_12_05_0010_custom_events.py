"""rule fields event_count and event_last_at: each custom event's type and time, kept with its home

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    # Custom events recorded before this revision are not here: their events are not replayed, so the rule
    # fields count only occurrences recorded from now on (docs/segmentation.md).
    op.create_table(
        "custom_event",
        sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    # A rule counts one customer's occurrences of one type in a window (or takes the newest).
    op.create_index("ix_custom_event_customer_type", "custom_event", ["customer_id", "event_type", "occurred_at"], schema=SCHEMA)
    # Merges and unmerges move events by their home (shared/contracts/identity.py).
    op.create_index("ix_custom_event_home_customer_id", "custom_event", ["home_customer_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("custom_event", schema=SCHEMA)
