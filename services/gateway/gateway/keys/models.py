import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from gateway.tables import metadata

api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("partner_id", sa.Text),
    # SHA-256 of the key: the key has 256 bits of entropy, so a fast hash is enough and lookups are by hash.
    sa.Column("key_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("rate_limit_per_s", sa.Float),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
