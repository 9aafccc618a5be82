"""rule fields sku and category: the lines of each purchase, kept with the purchase

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    # Purchases stored before this revision have no lines here: their events are not replayed, so sku and
    # category rules see only purchases recorded from now on (docs/segmentation.md).
    op.create_table(
        "purchase_line",
        sa.Column("purchase_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("category", sa.Text),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_purchase_line_customer_sku", "purchase_line", ["customer_id", "sku"], schema=SCHEMA)
    op.create_index("ix_purchase_line_customer_category", "purchase_line", ["customer_id", "category"], schema=SCHEMA)
    # Merges and unmerges move lines by their home, like the purchase's (shared/contracts/identity.py).
    op.create_index("ix_purchase_line_home_customer_id", "purchase_line", ["home_customer_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("purchase_line", schema=SCHEMA)
