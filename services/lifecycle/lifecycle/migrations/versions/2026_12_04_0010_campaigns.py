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


# The copies are written by the facts consumer, which has read the topics already: purchases and refunds are
# taken over from its facts (each with its home), so a customer's earlier orders still precede a new lead.
# A refund's id was not kept there: one is made from its event (the inbox never applies that event again).
# Leads' campaign and source were not kept: the report counts leads captured from the upgrade on.
BACKFILL = [
    f"""INSERT INTO {SCHEMA}.campaign_purchase (purchase_id, home_customer_id, amount, currency, occurred_at)
        SELECT CAST(data->>'purchase_id' AS uuid), home_customer_id, CAST(data->>'amount' AS numeric),
               data->>'currency', occurred_at
        FROM {SCHEMA}.customer_fact WHERE kind = 'purchase' AND data ? 'amount' AND data ? 'purchase_id'
        ON CONFLICT DO NOTHING""",
    f"""INSERT INTO {SCHEMA}.campaign_refund (refund_id, purchase_id, amount, cancelled)
        SELECT CAST(md5(r.source || ':' || r.event_id) AS uuid), CAST(r.data->>'purchase_id' AS uuid),
               CAST(r.data->>'amount' AS numeric),
               EXISTS (SELECT 1 FROM {SCHEMA}.customer_fact c WHERE c.kind = 'cancellation' AND c.source = r.source
                       AND c.event_id = r.event_id)
        FROM {SCHEMA}.customer_fact r WHERE r.kind = 'refund' AND r.data ? 'amount' AND r.data ? 'purchase_id'
        ON CONFLICT DO NOTHING""",
]


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    ]


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
    for statement in BACKFILL:
        op.execute(statement)


def downgrade() -> None:
    for table in ("campaign_value", "campaign_refund", "campaign_purchase", "campaign_lead", "campaign"):
        op.drop_table(table, schema=SCHEMA)
