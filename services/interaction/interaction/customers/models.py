import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from interaction.tables import metadata

customer = sa.Table(
    "customer",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# How partners refer to a customer: (source, external id). Identity resolution maps these to `customer.id`.
customer_identifier = sa.Table(
    "customer_identifier",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("external_id", sa.Text, primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customer.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

purchase = sa.Table(
    "purchase",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customer.id", ondelete="CASCADE"), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric(18, 4), nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # One order is one purchase, however many times (and through whichever door) it arrives.
    sa.UniqueConstraint("source", "order_id"),
    sa.Index("ix_purchase_customer_occurred", "customer_id", "occurred_at"),
)
