"""rule segments are edited and archived: versions of a rule, the version behind each entry and exit

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    op.add_column("segment", sa.Column("version", sa.Integer, nullable=False, server_default="1"), schema=SCHEMA)
    op.add_column("segment", sa.Column("archived_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_table(
        "segment_version",
        sa.Column("segment_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    # Rule segments saved before versions existed: their rule is version 1.
    op.execute(
        sa.text(f"""
        INSERT INTO {SCHEMA}.segment_version (segment_id, version, name, description, definition, created_at)
        SELECT segment_id, 1, name, description, definition, created_at FROM {SCHEMA}.segment
        WHERE kind = 'rule' AND definition IS NOT NULL""")
    )
    op.add_column("segment_membership", sa.Column("entered_version", sa.Integer), schema=SCHEMA)
    op.add_column("segment_membership", sa.Column("left_version", sa.Integer), schema=SCHEMA)
    # A segment's own history, newest first, is read by (segment_id, membership_id).
    op.create_index("ix_segment_membership_segment_history", "segment_membership", ["segment_id", "membership_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_segment_membership_segment_history", "segment_membership", schema=SCHEMA)
    op.drop_column("segment_membership", "left_version", schema=SCHEMA)
    op.drop_column("segment_membership", "entered_version", schema=SCHEMA)
    op.drop_table("segment_version", schema=SCHEMA)
    op.drop_column("segment", "archived_at", schema=SCHEMA)
    op.drop_column("segment", "version", schema=SCHEMA)
