"""erased customers: the copy drops a fact whose home was erased (shared/contracts/identity.py, "Erasure")

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    op.create_table(
        "erased_customer",
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_erased_customer"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("erased_customer", schema=SCHEMA)
