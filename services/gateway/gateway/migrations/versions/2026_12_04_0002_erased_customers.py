"""erased customers: no webhook delivery about them is queued after their erasure

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
SCHEMA = "gateway"


def upgrade() -> None:
    op.create_table(
        "erased_customer",
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name="pk_erased_customer"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("erased_customer", schema=SCHEMA)
