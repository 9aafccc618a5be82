"""customer stage and stage history; outbox and inbox

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
SCHEMA = "lifecycle"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    create_messaging_tables_v1(op, SCHEMA)
    op.create_table(
        "customer_stage",
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_count", sa.Integer, server_default="0", nullable=False),
        sa.Column("total_spend", sa.Numeric(18, 4), server_default="0", nullable=False),
        sa.Column("last_purchase_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_stage"),
        schema=SCHEMA,
    )
    op.create_table(
        "stage_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("trigger_event_id", sa.Text),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_stage_history"),
        schema=SCHEMA,
    )
    op.create_index("ix_stage_history_customer_entered", "stage_history", ["customer_id", "entered_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("stage_history", schema=SCHEMA)
    op.drop_table("customer_stage", schema=SCHEMA)
    drop_messaging_tables_v1(op, SCHEMA)
