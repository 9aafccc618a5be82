import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from lifecycle.stages.models import _timestamps
from lifecycle.tables import metadata

TZ = sa.DateTime(timezone=True)

campaign = sa.Table(
    "campaign",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),  # the `campaign` partners put on leads
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("channel", sa.Text),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("budget", sa.Numeric(18, 4)),
    sa.Column("cost", sa.Numeric(18, 4)),
    sa.Column("starts_on", sa.Date),
    sa.Column("ends_on", sa.Date),
    *_timestamps(),
)

# One row per lead.captured. Leads and purchases keep their home only: the report places them at live(home)
# through lifecycle.merged_customer (campaigns/projection.py).
campaign_lead = sa.Table(
    "campaign_lead",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("campaign", sa.Text),
    sa.Column("lead_source", sa.Text),
    sa.Column("qualified", sa.Boolean, nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    *_timestamps(),
    sa.Index("ix_campaign_lead_occurred", "occurred_at"),
)

campaign_purchase = sa.Table(
    "campaign_purchase",
    metadata,
    sa.Column("purchase_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("amount", sa.Numeric(18, 4), nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    *_timestamps(),
)

# Refunds by their own id: one may arrive before its purchase; a cancellation takes the purchase out.
campaign_refund = sa.Table(
    "campaign_refund",
    metadata,
    sa.Column("refund_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("purchase_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("amount", sa.Numeric(18, 4), nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    *_timestamps(),
)

campaign_value = sa.Table(
    "campaign_value",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("clv", sa.Numeric(18, 4), nullable=False),
    sa.Column("as_of", TZ, nullable=False),
    sa.Column("version", sa.BigInteger),  # clv's order (shared/contracts/ordering.py)
    *_timestamps(),
)
