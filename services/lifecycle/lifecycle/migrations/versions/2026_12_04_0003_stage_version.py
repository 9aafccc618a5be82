"""the owner's order of a customer's stage: a version on customer_stage, published on stage.changed

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
SCHEMA = "lifecycle"


def upgrade() -> None:
    # One sequence for every customer: taken under the customer's lock, so each customer's versions increase
    # in commit order, and they keep increasing when a stage row is deleted and created again (merge, undo).
    op.execute(f"CREATE SEQUENCE {SCHEMA}.stage_version_seq")
    op.add_column("customer_stage", sa.Column("version", sa.BigInteger), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.customer_stage SET version = nextval('{SCHEMA}.stage_version_seq')")


def downgrade() -> None:
    op.drop_column("customer_stage", "version", schema=SCHEMA)
    op.execute(f"DROP SEQUENCE {SCHEMA}.stage_version_seq")
