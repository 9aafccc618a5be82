"""facts keep their home and merges are remembered in force or undone, so copies follow any arrival order

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None
SCHEMA = "clv"
FACTS = ["purchase", "feedback"]


def upgrade() -> None:
    for table in FACTS:
        op.add_column(table, sa.Column("home_customer_id", UUID(as_uuid=True)), schema=SCHEMA)
        # Rows copied before homes were published: their current customer stands in. The merges below have no
        # version: their undo moves exactly the facts it lists (shared/contracts/identity.py).
        op.execute(f"UPDATE {SCHEMA}.{table} SET home_customer_id = customer_id")
        op.alter_column(table, "home_customer_id", nullable=False, schema=SCHEMA)
        op.create_index(f"ix_{table}_home_customer_id", table, ["home_customer_id"], schema=SCHEMA)
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
    # The merges in force as the copy knew them.
    op.execute(f"""INSERT INTO {SCHEMA}.customer_merge (merge_id, survivor_id, merged_id, undone)
                   SELECT merge_id, survivor_id, merged_id, false FROM {SCHEMA}.customer_alias
                   ON CONFLICT DO NOTHING""")


def downgrade() -> None:
    op.drop_table("customer_merge", schema=SCHEMA)
    for table in FACTS:
        op.drop_index(f"ix_{table}_home_customer_id", table, schema=SCHEMA)
        op.drop_column(table, "home_customer_id", schema=SCHEMA)
