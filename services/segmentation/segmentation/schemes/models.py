import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from segmentation.profiles.models import timestamps
from segmentation.tables import metadata

rfm_scheme = sa.Table(
    "rfm_scheme",
    metadata,
    sa.Column("scheme_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("segments", JSONB, nullable=False),
    *timestamps(),
)
