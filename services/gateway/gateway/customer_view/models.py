"""The gateway's copy of the composed view: per customer, each part as its owner last answered it."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from gateway.tables import metadata

PARTS = ("profile", "segmentation", "value", "lifecycle")

customer_view_copy = sa.Table(
    "customer_view_copy",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    # Set from the profile: the customer a merged-away id resolves to (its other parts are on that row).
    sa.Column("survivor_id", UUID(as_uuid=True), nullable=True),
    # When the gateway last consumed an event about the customer: parts read before it (plus the settle
    # window) are not served from the copy.
    sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
    *[
        c
        for part in PARTS
        for c in (
            sa.Column(f"{part}_status", sa.SmallInteger, nullable=True),
            sa.Column(f"{part}_body", sa.LargeBinary, nullable=True),
            sa.Column(f"{part}_as_of", sa.DateTime(timezone=True), nullable=True),
            sa.Column(f"{part}_version", sa.BigInteger, nullable=True),
        )
    ],
)

# Parts an owner changes for every customer at once (a segmentation run rewrites scores, clusters and tiers, also
# where no membership changed): when the gateway last heard of such a change. A part read before it (plus the
# settle window) is not served from the copy.
WHOLE_PART_CHANGES = ("segmentation",)

view_part_changed = sa.Table(
    "view_part_changed",
    metadata,
    sa.Column("part", sa.Text, primary_key=True),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)
