"""Tables of the customer profile: customers, identifiers, properties, purchases, the timeline, traits, merges.

Every fact row carries `customer_id` (the live customer it belongs to now) and `home_customer_id` (the customer
it was first recorded for): merges re-point `customer_id`, an unmerge sends rows back by their home.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from interaction.tables import metadata

TZ = sa.DateTime(timezone=True)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    ]


def _customer_fk() -> sa.ForeignKey:
    return sa.ForeignKey("customer.id", ondelete="CASCADE")


customer = sa.Table(
    "customer",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("first_seen_at", TZ, nullable=False),
    sa.Column("merged_into", UUID(as_uuid=True)),
    sa.Column("erased_at", TZ),
    # The version of the last `customer.updated` published for it (customers/published.py): what the profile
    # state route answers with, for copies to be compared against (`reconcile`).
    sa.Column("profile_version", sa.BigInteger),
    # Computed traits, extended or recomputed per batch for the customers a batch touched (see traits/service.py).
    sa.Column("last_seen_at", TZ),
    sa.Column("purchase_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_purchase_at", TZ),
    sa.Column("preferred_channel", sa.Text),
    # {channel: {"n": uses, "at": latest use}}: what the preferred channel is chosen from, kept so that a batch
    # extends it instead of counting the whole history again.
    sa.Column("channel_use", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("last_touchpoints", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("latest_nps", sa.Integer),
    sa.Column("latest_nps_at", TZ),
    sa.Column("latest_csat", sa.Integer),
    sa.Column("latest_csat_at", TZ),
    sa.Column("partners", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    *_timestamps(),
)

# How a customer is known: kind 'source' = (partner, the partner's id); 'email' / 'phone' with source '' when a
# partner trusted to link by contact details sent them, else under the sending partner's source (its own only).
customer_identifier = sa.Table(
    "customer_identifier",
    metadata,
    sa.Column("kind", sa.Text, primary_key=True, server_default="source"),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("external_id", sa.Text, primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), _customer_fk(), nullable=False, index=True),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
    *_timestamps(),
    sa.Index("ix_customer_identifier_kind_external_id", "kind", "external_id"),
)

# Typed custom attributes (kind 'attribute') and consent per purpose (kind 'consent'); newest occurred_at wins.
customer_property = sa.Table(
    "customer_property",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), _customer_fk(), primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", JSONB),
    sa.Column("value_type", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    sa.Column("filled_by_merge_id", UUID(as_uuid=True)),
    *_timestamps(),
)

purchase = sa.Table(
    "purchase",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), _customer_fk(), nullable=False),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric(18, 4), nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("line_items", JSONB),
    sa.Column("shipping_cost", sa.Numeric(18, 4)),
    sa.Column("discount", sa.Numeric(18, 4)),
    *_timestamps(),
    # One order is one purchase, however many times (and through whichever door) it arrives.
    sa.UniqueConstraint("source", "order_id"),
    sa.Index("ix_purchase_customer_occurred", "customer_id", "occurred_at"),
)

# Refunds and cancellations, keyed by the order they adjust; kept even when the order has not arrived yet.
purchase_adjustment = sa.Table(
    "purchase_adjustment",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), _customer_fk(), nullable=False, index=True),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric(18, 4)),
    sa.Column("currency", sa.CHAR(3)),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("occurred_at", TZ, nullable=False),
    sa.Column("published_at", TZ),
    *_timestamps(),
    sa.Index("ix_purchase_adjustment_order", "source", "order_id"),
)

# The timeline: one row per accepted partner event about the customer (the raw facts traits are computed from).
activity = sa.Table(
    "activity",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), _customer_fk(), nullable=False),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    sa.Column("channel", sa.Text),
    sa.Column("data", JSONB, nullable=False),
    *_timestamps(),
    sa.Index("ix_activity_customer_occurred", "customer_id", "occurred_at", "id"),
    sa.Index("ix_activity_source_occurred", "source", "occurred_at"),
)

deal = sa.Table(
    "deal",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("deal_id", sa.Text, primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), _customer_fk(), nullable=False, index=True),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("pipeline", sa.Text, nullable=False),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric(18, 4)),
    sa.Column("currency", sa.CHAR(3)),
    sa.Column("expected_close", TZ),
    sa.Column("owner", sa.Text),
    sa.Column("lost_reason", sa.Text),
    sa.Column("occurred_at", TZ, nullable=False),
    *_timestamps(),
)

customer_spend = sa.Table(
    "customer_spend",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), _customer_fk(), primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("purchase_count", sa.Integer, nullable=False),
    sa.Column("total_spend", sa.Numeric(18, 4), nullable=False),
    sa.Column("average_spend", sa.Numeric(18, 4), nullable=False),
    sa.Column("refunded", sa.Numeric(18, 4), nullable=False),
    sa.Column("last_purchase_at", TZ),
    *_timestamps(),
)

# The merge audit: who survived, who was folded in, why, and what the merged customer's properties were.
customer_merge = sa.Table(
    "customer_merge",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("survivor_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("merged_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("merged_at", TZ, nullable=False),
    sa.Column("undone_at", TZ),
    sa.Column("snapshot", JSONB, nullable=False),
    # The partners whose events linked the two customers; empty for a merge by a user.
    sa.Column("caused_by", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    *_timestamps(),
)

partner = sa.Table(
    "partner",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("auto_registered", sa.Boolean, nullable=False),
    # Whether the partner's emails and phones may link its customers to other partners' (docs/security.md).
    sa.Column("trust_contact_linking", sa.Boolean, nullable=False, server_default=sa.false()),
    *_timestamps(),
)
