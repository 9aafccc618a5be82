"""the owners' order: a version on each published value (customer.value_updated), and the lifecycle version
on the stage copy

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
SCHEMA = "clv"


def upgrade() -> None:
    # One sequence for every customer and currency, taken while the value row is locked: a customer's versions
    # increase in the order its values commit.
    op.execute(f"CREATE SEQUENCE {SCHEMA}.value_version_seq")
    op.add_column("customer_value", sa.Column("version", sa.BigInteger), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.customer_value SET version = nextval('{SCHEMA}.value_version_seq')")
    # The copy of lifecycle's stage follows lifecycle's version (null: copied before versions existed).
    op.add_column("customer_stage", sa.Column("version", sa.BigInteger), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("customer_stage", "version", schema=SCHEMA)
    op.drop_column("customer_value", "version", schema=SCHEMA)
    op.execute(f"DROP SEQUENCE {SCHEMA}.value_version_seq")
