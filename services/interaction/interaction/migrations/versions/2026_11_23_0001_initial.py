"""customers, identifiers, purchases; outbox and inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from shared.messaging.tables import create_messaging_tables_v1, drop_messaging_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
SCHEMA = "interaction"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    create_messaging_tables_v1(op, SCHEMA)
    op.create_table(
        "customer",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_customer"),
        schema=SCHEMA,
    )
    op.create_table(
        "customer_identifier",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("source", "external_id", name="pk_customer_identifier"),
        sa.ForeignKeyConstraint(
            ["customer_id"], [f"{SCHEMA}.customer.id"], ondelete="CASCADE", name="fk_customer_identifier_customer_id_customer"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_customer_identifier_customer_id", "customer_identifier", ["customer_id"], schema=SCHEMA)
    op.create_table(
        "purchase",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_purchase"),
        sa.UniqueConstraint("source", "order_id", name="uq_purchase_source_order_id"),
        sa.ForeignKeyConstraint(
            ["customer_id"], [f"{SCHEMA}.customer.id"], ondelete="CASCADE", name="fk_purchase_customer_id_customer"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_purchase_customer_occurred", "purchase", ["customer_id", "occurred_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("purchase", schema=SCHEMA)
    op.drop_table("customer_identifier", schema=SCHEMA)
    op.drop_table("customer", schema=SCHEMA)
    drop_messaging_tables_v1(op, SCHEMA)
