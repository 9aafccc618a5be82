"""facts keep their home and merges are remembered in force or undone, so the copy follows any arrival order

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"


def upgrade() -> None:
    op.add_column("customer_fact", sa.Column("home_customer_id", UUID(as_uuid=True)), schema=SCHEMA)
    # A fact folded by a merge remembered the customer it came from; others stand for their customer.
    op.execute(f"UPDATE {SCHEMA}.customer_fact SET home_customer_id = coalesce(original_customer_id, customer_id)")
    op.alter_column("customer_fact", "home_customer_id", nullable=False, schema=SCHEMA)
    op.create_index("ix_customer_fact_home", "customer_fact", ["home_customer_id"], schema=SCHEMA)
    op.drop_index("ix_customer_fact_merge", "customer_fact", schema=SCHEMA)
    op.drop_column("customer_fact", "merge_id", schema=SCHEMA)
    op.drop_column("customer_fact", "original_customer_id", schema=SCHEMA)
    op.create_table(
        "customer_merge",
        sa.Column("merge_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("survivor_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("merged_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("version", sa.BigInteger),
        sa.Column("undone", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.execute(f"""INSERT INTO {SCHEMA}.customer_merge (merge_id, survivor_id, merged_id, undone)
                   SELECT merge_id, survivor_id, merged_id, false FROM {SCHEMA}.merged_customer
                   ON CONFLICT DO NOTHING""")


def downgrade() -> None:
    op.drop_table("customer_merge", schema=SCHEMA)
    op.add_column("customer_fact", sa.Column("original_customer_id", UUID(as_uuid=True)), schema=SCHEMA)
    op.add_column("customer_fact", sa.Column("merge_id", UUID(as_uuid=True)), schema=SCHEMA)
    op.create_index(
        "ix_customer_fact_merge", "customer_fact", ["merge_id"], schema=SCHEMA, postgresql_where=sa.text("merge_id IS NOT NULL")
    )
    op.drop_index("ix_customer_fact_home", "customer_fact", schema=SCHEMA)
    op.drop_column("customer_fact", "home_customer_id", schema=SCHEMA)
