import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from interaction.customers.models import TZ, _timestamps
from interaction.tables import metadata

# One row per (customer, segment) ever heard of; `member` false once left. Segmentation's order wins whatever the
# arrival order: the change with the greatest version (shared/contracts/ordering.py); `changed_at` is when
# segmentation decided, and may go back.
segment_membership = sa.Table(
    "segment_membership",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("segment_key", sa.Text, primary_key=True),
    sa.Column("segment_name", sa.Text, nullable=False),
    sa.Column("member", sa.Boolean, nullable=False),
    sa.Column("changed_at", TZ, nullable=False),
    sa.Column("version", sa.BigInteger),
    *_timestamps(),
    sa.Index("ix_segment_membership_segment", "segment_key", "member"),
)
