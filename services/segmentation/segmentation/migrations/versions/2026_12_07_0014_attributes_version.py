"""attributes version: the attribute copy keeps the profile interaction published last in its own order

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    op.add_column("customer_aggregate", sa.Column("attributes_version", sa.BigInteger), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("customer_aggregate", "attributes_version", schema=SCHEMA)
