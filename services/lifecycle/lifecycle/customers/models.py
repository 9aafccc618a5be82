import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from lifecycle.stages.models import _timestamps
from lifecycle.tables import metadata

# One row per customer interaction announced; erased ones keep their row (the id is not PII) with erased_at set.
known_customer = sa.Table(
    "known_customer",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("erased_at", sa.DateTime(timezone=True)),
    *_timestamps(),
)
