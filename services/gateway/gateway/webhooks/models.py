import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from gateway.tables import metadata

webhook_subscription = sa.Table(
    "webhook_subscription",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_types", ARRAY(sa.Text), nullable=False),
    sa.Column("filters", JSONB, nullable=False, server_default="{}"),
    sa.Column("description", sa.Text),
    # The signing secret must be readable to sign with (unlike API keys, it cannot be stored hashed).
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

webhook_delivery = sa.Table(
    "webhook_delivery",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "subscription_id", UUID(as_uuid=True), sa.ForeignKey("webhook_subscription.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_source", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    # Deliveries of one subscription with the same key go out in order (the customer id).
    sa.Column("ordering_key", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("subscription_id", "event_source", "event_id"),
    sa.Index("ix_webhook_delivery_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")),
    sa.Index(
        "ix_webhook_delivery_order", "subscription_id", "ordering_key", "id", postgresql_where=sa.text("status = 'pending'")
    ),
)

# Customers erased (R8): an event about one that arrives after `customer.erased` (the four topics are not
# ordered with each other) is not queued for delivery. Holds the internal id only.
erased_customer = sa.Table(
    "erased_customer",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
