"""a delivery's outcome is write-once; a change is an audited correction (who, why, from, to)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None
SCHEMA = "clv"


def upgrade() -> None:
    op.add_column("delivery", sa.Column("corrections", sa.Integer, nullable=False, server_default="0"), schema=SCHEMA)
    op.create_table(
        "outcome_correction",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("delivery_id", UUID(as_uuid=True), nullable=False),
        sa.Column("from_outcome", sa.Text, nullable=False),
        sa.Column("to_outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("corrected_by", sa.Text, nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Index("ix_outcome_correction_delivery", "delivery_id", "corrected_at", "id"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("outcome_correction", schema=SCHEMA)
    op.drop_column("delivery", "corrections", schema=SCHEMA)
