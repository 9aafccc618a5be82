"""rule fields from interaction's facts: channels, partners, campaigns, lead sources; NPS and CSAT

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "customer_fact",
        sa.Column("fact_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("origin_id", UUID(as_uuid=True)),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_index("ix_customer_fact_customer", "customer_fact", ["customer_id", "kind", "value"], schema=SCHEMA)
    op.create_index("ix_customer_fact_origin", "customer_fact", ["origin_id"], schema=SCHEMA)
    # Merges and unmerges move facts by their home (shared/contracts/identity.py).
    op.create_index("ix_customer_fact_home_customer_id", "customer_fact", ["home_customer_id"], schema=SCHEMA)
    op.create_table(
        "feedback",
        sa.Column("feedback_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("nps", sa.SmallInteger),
        sa.Column("csat", sa.SmallInteger),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_index("ix_feedback_customer", "feedback", ["customer_id", "occurred_at"], schema=SCHEMA)
    op.create_index("ix_feedback_home_customer_id", "feedback", ["home_customer_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("feedback", schema=SCHEMA)
    op.drop_table("customer_fact", schema=SCHEMA)
