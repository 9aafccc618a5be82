"""the owners' order on the copies of clv's value and lifecycle's stage

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    # Null: copied before the owners published versions (shared/contracts/ordering.py).
    op.add_column("customer_aggregate", sa.Column("value_version", sa.BigInteger), schema=SCHEMA)
    op.add_column("customer_aggregate", sa.Column("stage_version", sa.BigInteger), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("customer_aggregate", "stage_version", schema=SCHEMA)
    op.drop_column("customer_aggregate", "value_version", schema=SCHEMA)
