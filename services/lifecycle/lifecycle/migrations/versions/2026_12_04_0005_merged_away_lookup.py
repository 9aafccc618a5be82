"""merged-away ids and their survivors, so a read of a merged-away id answers as its survivor (as the profile does)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"


def upgrade() -> None:
    op.create_table(
        "merged_customer",
        sa.Column("merged_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("survivor_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("merge_id", UUID(as_uuid=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("merged_customer", schema=SCHEMA)
