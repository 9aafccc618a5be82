"""segment CSV exports as jobs: the export (status, progress, lease) and its file in chunks

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from shared.jobs import unfinished_index

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    op.create_table(
        "segment_export",
        sa.Column("export_id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "segment_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.segment.segment_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("rows_total", sa.BigInteger),
        sa.Column("rows_written", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("claimed_by", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_segment_export_segment_kind_finished", "segment_export", ["segment_id", "kind", "finished_at"], schema=SCHEMA
    )
    # One unfinished export per segment and kind (a second request gets 409 naming it).
    op.execute(unfinished_index("segment_export", ["segment_id", "kind"], SCHEMA))
    op.create_table(
        "segment_export_chunk",
        sa.Column(
            "export_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.segment_export.export_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("chunk_no", sa.Integer, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("segment_export_chunk", schema=SCHEMA)
    op.drop_table("segment_export", schema=SCHEMA)
