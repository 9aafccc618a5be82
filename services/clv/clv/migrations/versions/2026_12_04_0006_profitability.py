"""profitability: the orders, refunds and touchpoints it costs (at home like clv's purchases), and the cost settings

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None
SCHEMA = "clv"
MONEY = sa.Numeric(18, 4)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    # Filled from the interaction topic by the feature's own consumer (a new group: it reads the topic from
    # the start, so the history still on the topic is costed too).
    op.create_table(
        "profit_order",
        sa.Column("purchase_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("known_cost", MONEY, nullable=False, server_default="0"),
        sa.Column("shipping_cost", MONEY, nullable=False, server_default="0"),
        sa.Column("discount", MONEY, nullable=False, server_default="0"),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("backfilled", sa.Boolean, nullable=False, server_default=sa.false()),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_index("ix_profit_order_currency_customer", "profit_order", ["currency", "customer_id"], schema=SCHEMA)
    op.create_table(
        "profit_order_part",
        sa.Column("purchase_id", UUID(as_uuid=True), nullable=False),
        sa.Column("category", sa.Text),
        sa.Column("value", MONEY, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "profit_refund",
        sa.Column("refund_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("purchase_id", UUID(as_uuid=True), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_table(
        "profit_touchpoint",
        sa.Column("touchpoint_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_table(
        "cost_rate",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("cost_rate", sa.Float, nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_table(
        "touchpoint_cost",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("currency", sa.CHAR(3), primary_key=True),
        sa.Column("cost", MONEY, nullable=False),
        *_timestamps(),
        schema=SCHEMA,
    )
    _indexes()
    _backfill()


def _indexes() -> None:
    for table, column in [
        ("profit_order", "customer_id"),
        ("profit_order", "home_customer_id"),
        ("profit_order_part", "purchase_id"),
        ("profit_refund", "purchase_id"),
        ("profit_touchpoint", "customer_id"),
        ("profit_touchpoint", "home_customer_id"),
    ]:
        op.create_index(f"ix_clv_{table}_{column}", table, [column], schema=SCHEMA)


def _backfill() -> None:
    """The purchases and refunds clv already holds, so profitability has history at once (costed by the
    defaults: the copy knows no partner and no line costs), each with its home and customer as clv has them.
    Merges need no copy: the feature follows clv.customer_merge, the merges clv has heard of. Touchpoints were
    never kept: they come from the topic only. The consumer replaces a copied order by its event when the topic
    still holds it."""
    for sql in [
        f"""INSERT INTO {SCHEMA}.profit_order (purchase_id, customer_id, home_customer_id, source, currency, amount,
                                               occurred_at, backfilled)
            SELECT purchase_id, customer_id, home_customer_id, '', currency, amount, occurred_at, true
            FROM {SCHEMA}.purchase""",
        f"""INSERT INTO {SCHEMA}.profit_order_part (purchase_id, category, value)
            SELECT purchase_id, NULL, amount FROM {SCHEMA}.purchase""",
        f"""INSERT INTO {SCHEMA}.profit_refund (refund_id, purchase_id, amount, cancelled, occurred_at)
            SELECT refund_id, purchase_id, amount, cancelled, occurred_at FROM {SCHEMA}.refund""",
    ]:
        op.execute(sa.text(sql))


def downgrade() -> None:
    for table in ["touchpoint_cost", "cost_rate", "profit_touchpoint", "profit_refund", "profit_order_part", "profit_order"]:
        op.drop_table(table, schema=SCHEMA)
