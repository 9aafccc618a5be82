"""The profitability feature's tables: its own copy of the orders, refunds and touchpoints it needs, and the
cost settings an admin sets (defaults for missing costs, cost per touchpoint kind)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from clv.tables import metadata
from clv.transaction_summary.models import _timestamps

MONEY = sa.Numeric(18, 4)

# One row per purchase. `known_cost` is the cost of goods of the lines that carried a unit cost; what had no
# cost is in `profit_order_part` (its value at price and its category), costed at read time with the defaults
# then in force, so changing a default re-costs history.
profit_order = sa.Table(
    "profit_order",
    metadata,
    sa.Column("purchase_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False, index=True),
    # The customer the fact came in under: it belongs to live(home) over clv.customer_merge
    # (shared/contracts/identity.py), as the transaction summary's purchases do.
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("known_cost", MONEY, nullable=False, server_default="0"),
    sa.Column("shipping_cost", MONEY, nullable=False, server_default="0"),
    sa.Column("discount", MONEY, nullable=False, server_default="0"),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    # Copied from `clv.purchase` when the feature was installed (no partner, no costs): the purchase event,
    # if the topic still holds it, replaces the copy with what the partner sent.
    sa.Column("backfilled", sa.Boolean, nullable=False, server_default=sa.false()),
    *_timestamps(),
    sa.Index("ix_profit_order_currency_customer", "currency", "customer_id"),
)

profit_order_part = sa.Table(
    "profit_order_part",
    metadata,
    sa.Column("purchase_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("category", sa.Text),
    sa.Column("value", MONEY, nullable=False),
)

profit_refund = sa.Table(
    "profit_refund",
    metadata,
    sa.Column("refund_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("purchase_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *_timestamps(),
)

profit_touchpoint = sa.Table(
    "profit_touchpoint",
    metadata,
    sa.Column("touchpoint_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *_timestamps(),
)

# Cost of goods as a fraction of the price, for lines (or orders) that came without a unit cost: by product
# category, else by partner, else 1 − the service's `margin` setting.
cost_rate = sa.Table(
    "cost_rate",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),  # category | partner
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("cost_rate", sa.Float, nullable=False),
    *_timestamps(),
)

# What one touchpoint of a kind costs to serve, in a currency. Kinds: a touchpoint's channel (support, phone,
# email…), and `return` for each refund (handling a return).
touchpoint_cost = sa.Table(
    "touchpoint_cost",
    metadata,
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("cost", MONEY, nullable=False),
    *_timestamps(),
)
