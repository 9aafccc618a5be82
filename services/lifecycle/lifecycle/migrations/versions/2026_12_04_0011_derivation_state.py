"""the rules' state after a customer's last fact, kept with its stage, so a fact that extends the history is
applied to it instead of replaying every fact (null: not derived since; the next derivation replays and fills it)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"


def upgrade() -> None:
    op.add_column("customer_stage", sa.Column("derivation", JSONB), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("customer_stage", "derivation", schema=SCHEMA)
