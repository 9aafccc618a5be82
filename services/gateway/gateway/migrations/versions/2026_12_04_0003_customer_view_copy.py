"""customer view copy: the composed view's parts as the owners last answered them, one row per customer

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
SCHEMA = "gateway"
PARTS = ("profile", "segmentation", "value", "lifecycle")


def upgrade() -> None:
    part_columns: list[sa.Column] = []
    for part in PARTS:
        part_columns += [
            sa.Column(f"{part}_status", sa.SmallInteger, nullable=True),  # 200 or 404 (absent), null: never read
            sa.Column(f"{part}_body", sa.LargeBinary, nullable=True),  # the owner's JSON bytes as it sent them
            sa.Column(f"{part}_as_of", sa.DateTime(timezone=True), nullable=True),
            sa.Column(f"{part}_version", sa.BigInteger, nullable=True),
        ]
    op.create_table(
        "customer_view_copy",
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("survivor_id", UUID(as_uuid=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        *part_columns,
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_view_copy"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_customer_view_copy_survivor_id",
        "customer_view_copy",
        ["survivor_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("survivor_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("customer_view_copy", schema=SCHEMA)
