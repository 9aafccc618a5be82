import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from interaction.customers.models import TZ, _timestamps
from interaction.tables import metadata

# One row per (customer, segment) ever heard of; `member` false once left. The newest change wins whatever the
# arrival order (segmentation's events carry no version; changed_at is its decision time, ties keep the first).
segment_membership = sa.Table(
    "segment_membership",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("segment_key", sa.Text, primary_key=True),
    sa.Column("segment_name", sa.Text, nullable=False),
    sa.Column("member", sa.Boolean, nullable=False),
    sa.Column("changed_at", TZ, nullable=False),
    *_timestamps(),
    sa.Index("ix_segment_membership_segment", "segment_key", "member"),
)
