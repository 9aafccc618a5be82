import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from segmentation.tables import metadata


def timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


# Raw rows kept so merges and unmerges can move them and aggregates can be re-derived for touched customers.
purchase = sa.Table(
    "purchase",
    metadata,
    sa.Column("purchase_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False, index=True),
    # The customer the fact came in under: it belongs to live(home) (shared/contracts/identity.py).
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("amount", sa.Numeric(18, 4), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *timestamps(),
)

purchase_refund = sa.Table(
    "purchase_refund",
    metadata,
    sa.Column("refund_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("purchase_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False, index=True),
    # The customer the fact came in under: it belongs to live(home) (shared/contracts/identity.py).
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("amount", sa.Numeric(18, 4), nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *timestamps(),
)

touchpoint = sa.Table(
    "touchpoint",
    metadata,
    sa.Column("touchpoint_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False, index=True),
    # The customer the fact came in under: it belongs to live(home) (shared/contracts/identity.py).
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *timestamps(),
)

# The lines of a purchase (rule fields `sku` and `category`: the customer bought it). Keyed by the purchase, with
# its customer and home, so merges, unmerges and erasure move or delete them exactly as the purchase row.
purchase_line = sa.Table(
    "purchase_line",
    metadata,
    sa.Column("purchase_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),  # position in the event's `lines`
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("category", sa.Text),
    sa.Column("quantity", sa.Integer, nullable=False),
    *timestamps(),
    sa.Index("ix_purchase_line_customer_sku", "customer_id", "sku"),
    sa.Index("ix_purchase_line_customer_category", "customer_id", "category"),
)

# One row per known customer: behaviour (all currencies), attributes, value (clv events), stage (lifecycle events).
customer_aggregate = sa.Table(
    "customer_aggregate",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("order_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_purchase_at", sa.DateTime(timezone=True)),
    sa.Column("last_purchase_at", sa.DateTime(timezone=True)),
    sa.Column("touchpoint_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_touch_at", sa.DateTime(timezone=True)),
    sa.Column("last_touch_at", sa.DateTime(timezone=True)),
    sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("attributes_version", sa.BigInteger),  # interaction's profile order
    sa.Column("clv", sa.Numeric(18, 4)),
    sa.Column("clv_currency", sa.CHAR(3)),
    sa.Column("value_tier", sa.Text),
    sa.Column("p_alive", sa.Float),
    sa.Column("value_as_of", sa.DateTime(timezone=True)),
    sa.Column("value_version", sa.BigInteger),  # clv's order (shared/contracts/ordering.py)
    sa.Column("stage", sa.Text),
    sa.Column("stage_changed_at", sa.DateTime(timezone=True)),
    sa.Column("stage_version", sa.BigInteger),  # lifecycle's order
    *timestamps(),
)

# Every merge heard of from interaction, in force or undone: the owner of each fact is derived from it, so it
# equals interaction's whatever order merges, unmerges and facts arrive in (shared/contracts/identity.py).
customer_merge = sa.Table(
    "customer_merge",
    metadata,
    sa.Column("merge_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("survivor_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("merged_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("version", sa.BigInteger),  # interaction's identity version (null: published before it had one)
    sa.Column("undone", sa.Boolean, nullable=False),
    *timestamps(),
)

# Every customer interaction erased (ids only): a fact whose home is one is dropped, whenever it arrives
# (shared/contracts/identity.py, "Erasure").
erased_customer = sa.Table(
    "erased_customer",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# A merged-away id answers as its live survivor; late events for it are folded into the survivor. Derived from
# customer_merge for the ids a merge or unmerge concerns.
customer_alias = sa.Table(
    "customer_alias",
    metadata,
    sa.Column("merged_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("survivor_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("merge_id", UUID(as_uuid=True), nullable=False),
    *timestamps(),
)

# What the customer did through whom, one row per (event, kind): `channel` and `partner` of purchases and
# touchpoints (`origin_id` = purchase or touchpoint id, which an unmerge from before identity versions lists),
# `campaign`, `lead_source` and `partner` of leads, `partner` of feedback. Facts are immutable events: inserted
# once by id; like purchases they keep their home and belong to live(home) (shared/contracts/identity.py).
customer_fact = sa.Table(
    "customer_fact",
    metadata,
    sa.Column("fact_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("origin_id", UUID(as_uuid=True)),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *timestamps(),
    sa.Index("ix_customer_fact_customer", "customer_id", "kind", "value"),
    sa.Index("ix_customer_fact_origin", "origin_id"),
)

# NPS and CSAT as the customer gave them (the rule fields read the latest non-null score).
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("feedback_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("nps", sa.SmallInteger),
    sa.Column("csat", sa.SmallInteger),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *timestamps(),
    sa.Index("ix_feedback_customer", "customer_id", "occurred_at"),
)

# Occurrences of admin-registered (custom) event types, one row per event (rule fields event_count and
# event_last_at). A row per event, not a count per day: a redelivered event inserts nothing (its id), and a merge
# or unmerge moves each occurrence by its home like any other fact (shared/contracts/identity.py). The event's
# data is not kept: the rules read only the type and the time.
custom_event = sa.Table(
    "custom_event",
    metadata,
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *timestamps(),
    sa.Index("ix_custom_event_customer_type", "customer_id", "event_type", "occurred_at"),
)
