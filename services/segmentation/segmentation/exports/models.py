import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from segmentation.profiles.models import timestamps
from segmentation.tables import metadata

# One export job (shared/jobs.py: claimed once across replicas with a lease); at most one unfinished per segment
# and kind (partial unique index, migration 0009).
segment_export = sa.Table(
    "segment_export",
    metadata,
    sa.Column("export_id", UUID(as_uuid=True), primary_key=True),
    sa.Column(
        "segment_id", UUID(as_uuid=True), sa.ForeignKey("segmentation.segment.segment_id", ondelete="CASCADE"), nullable=False
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
    *timestamps(),
    sa.Index("ix_segment_export_segment_kind_finished", "segment_id", "kind", "finished_at"),
)

# The file, in order: chunk 0 is the header, chunk n the n-th page of rows (no filesystem: any replica serves it).
segment_export_chunk = sa.Table(
    "segment_export_chunk",
    metadata,
    sa.Column(
        "export_id",
        UUID(as_uuid=True),
        sa.ForeignKey("segmentation.segment_export.export_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("chunk_no", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
