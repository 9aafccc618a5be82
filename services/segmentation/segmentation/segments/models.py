import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from segmentation.profiles.models import timestamps
from segmentation.tables import metadata

# `family` groups the segments one run decides together (e.g. "rfm:default", "cluster", "abc", "rule:<key>").
segment = sa.Table(
    "segment",
    metadata,
    sa.Column("segment_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("family", sa.Text, nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("definition", JSONB),
    sa.Column("summary", JSONB),
    sa.Column("last_run_id", UUID(as_uuid=True)),
    # Rule segments: the current version of the rule; archived ones are no longer evaluated nor listed.
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("archived_at", sa.DateTime(timezone=True)),
    *timestamps(),
)

# Every version of a rule segment's rule, kept for the history (an entry or exit names the version behind it).
segment_version = sa.Table(
    "segment_version",
    metadata,
    sa.Column("segment_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("definition", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

segment_membership = sa.Table(
    "segment_membership",
    metadata,
    sa.Column("membership_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("segment_id", UUID(as_uuid=True), nullable=False),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("left_at", sa.DateTime(timezone=True)),
    sa.Column("entered_run_id", UUID(as_uuid=True)),
    sa.Column("left_run_id", UUID(as_uuid=True)),
    sa.Column("entered_version", sa.Integer),  # the rule version whose evaluation made the entry (rule segments)
    sa.Column("left_version", sa.Integer),
    *timestamps(),
    sa.Index("ux_segment_membership_open", "segment_id", "customer_id", unique=True, postgresql_where=sa.text("left_at IS NULL")),
    sa.Index("ix_segment_membership_customer_id", "customer_id", "entered_at"),
    sa.Index("ix_segment_membership_segment_history", "segment_id", "membership_id"),
)
