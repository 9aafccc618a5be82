"""segmentation's memberships copied from its events, for each partner's share of each segment

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
SCHEMA = "interaction"


def upgrade() -> None:
    op.create_table(
        "segment_membership",
        sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("segment_key", sa.Text, primary_key=True),
        sa.Column("segment_name", sa.Text, nullable=False),
        sa.Column("member", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Index("ix_segment_membership_segment", "segment_key", "member"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("segment_membership", schema=SCHEMA)
