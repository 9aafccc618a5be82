import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from segmentation.profiles.models import timestamps
from segmentation.tables import metadata

segmentation_run = sa.Table(
    "segmentation_run",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("family", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("params", JSONB, nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("result", JSONB),
    sa.Column("error", sa.Text),
    sa.Column("trigger", sa.Text, nullable=False, server_default="api"),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    # The replica running it and until when (see shared/jobs.py): a lapsed lease means its replica died.
    sa.Column("claimed_by", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    *timestamps(),
    sa.Index("ix_segmentation_run_family_created", "family", "created_at"),
)

run_result = sa.Table(
    "run_result",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("segment_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("r", sa.SmallInteger),
    sa.Column("f", sa.SmallInteger),
    sa.Column("m", sa.SmallInteger),
    sa.Column("monetary", sa.Float),
)
