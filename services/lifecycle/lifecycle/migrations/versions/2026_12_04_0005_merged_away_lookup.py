"""a merged-away id is looked up by the facts folded into its survivor (reads of that id answer as the survivor)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"


def upgrade() -> None:
    op.create_index("ix_customer_fact_original_customer_id", "customer_fact", ["original_customer_id"], schema=SCHEMA,
                    postgresql_where="original_customer_id IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_customer_fact_original_customer_id", table_name="customer_fact", schema=SCHEMA)
