"""potential value from a wallet: the retention upside gets its own column; model choice per fit; what a
proposition's gain is based on

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
SCHEMA = "clv"


def upgrade() -> None:
    # Stored potential values were the retention upside (CLV if certainly alive − CLV): they keep that meaning
    # under its own name until the next scoring run computes the wallet-based potential.
    op.add_column(
        "customer_value", sa.Column("retention_value", sa.Numeric(18, 4), nullable=False, server_default="0"), schema=SCHEMA
    )
    op.execute(sa.text(f"UPDATE {SCHEMA}.customer_value SET retention_value = potential_value"))
    op.add_column("model_fit", sa.Column("selection", JSONB), schema=SCHEMA)
    op.add_column("proposition", sa.Column("value_basis", sa.Text, nullable=False, server_default="clv"), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("proposition", "value_basis", schema=SCHEMA)
    op.drop_column("model_fit", "selection", schema=SCHEMA)
    op.drop_column("customer_value", "retention_value", schema=SCHEMA)
