"""view part changed: when an owner last changed a part for every customer at once (a segmentation run)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
SCHEMA = "gateway"


def upgrade() -> None:
    op.create_table(
        "view_part_changed",
        sa.Column("part", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("part", name="pk_view_part_changed"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("view_part_changed", schema=SCHEMA)
