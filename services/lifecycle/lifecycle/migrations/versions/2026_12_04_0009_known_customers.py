"""the customers interaction announced, so a deal for an id nobody minted is refused

Backfilled from what lifecycle already holds of a customer (facts, a stage, deals): they came from interaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"


def upgrade() -> None:
    op.create_table(
        "known_customer",
        sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.execute("""
        INSERT INTO lifecycle.known_customer (customer_id, first_seen_at)
        SELECT customer_id, min(at) FROM (
            SELECT customer_id, min(occurred_at) AS at FROM lifecycle.customer_fact GROUP BY customer_id
            UNION ALL SELECT customer_id, stage_entered_at FROM lifecycle.customer_stage
            UNION ALL SELECT customer_id, min(created_at) FROM lifecycle.deal GROUP BY customer_id
        ) seen GROUP BY customer_id
        ON CONFLICT DO NOTHING""")


def downgrade() -> None:
    op.drop_table("known_customer", schema=SCHEMA)
