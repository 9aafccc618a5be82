"""purchase: the order's shipping cost and discount, as the partner sent them (clv's profitability reads them)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None
SCHEMA = "interaction"


def upgrade() -> None:
    # Nullable: older orders (and partners that do not send them) have neither. Line costs and categories
    # live in `line_items` already (the line as sent).
    op.add_column("purchase", sa.Column("shipping_cost", sa.Numeric(18, 4)), schema=SCHEMA)
    op.add_column("purchase", sa.Column("discount", sa.Numeric(18, 4)), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("purchase", "discount", schema=SCHEMA)
    op.drop_column("purchase", "shipping_cost", schema=SCHEMA)
