"""campaigns (budget, cost, dates) and the copies their report reads: leads, purchases, refunds, CLV

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"
TZ = sa.DateTime(timezone=True)


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
            sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now())]


def upgrade() -> None:
    op.create_table(
        "campaign",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("channel", sa.Text),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("budget", sa.Numeric(18, 4)),
        sa.Column("cost", sa.Numeric(18, 4)),
        sa.Column("starts_on", sa.Date),
        sa.Column("ends_on", sa.Date),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_table(
        "campaign_lead",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("campaign", sa.Text),
        sa.Column("lead_source", sa.Text),
        sa.Column("qualified", sa.Boolean, nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        *_timestamps(),
        sa.Index("ix_campaign_lead_occurred", "occurred_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "campaign_purchase",
        sa.Column("purchase_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_table(
        "campaign_refund",
        sa.Column("refund_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("purchase_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_table(
        "campaign_value",
        sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("currency", sa.CHAR(3), primary_key=True),
        sa.Column("clv", sa.Numeric(18, 4), nullable=False),
        sa.Column("as_of", TZ, nullable=False),
        sa.Column("version", sa.BigInteger),
        *_timestamps(),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("campaign_value", "campaign_refund", "campaign_purchase", "campaign_lead", "campaign"):
        op.drop_table(table, schema=SCHEMA)
