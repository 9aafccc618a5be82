"""transaction summary; outbox and inbox

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
SCHEMA = "clv"


def upgrade() -> None:
    create_messaging_tables_v1(op, SCHEMA)
    op.create_table(
        "transaction_summary",
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("purchase_count", sa.Integer, nullable=False),
        sa.Column("total_spend", sa.Numeric(18, 4), nullable=False),
        sa.Column("first_purchase_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "currency", name="pk_transaction_summary"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("transaction_summary", schema=SCHEMA)
    drop_messaging_tables_v1(op, SCHEMA)
