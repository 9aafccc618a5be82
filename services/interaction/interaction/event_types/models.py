"""The custom event type registry: one row per version of a type (a new version is a new row; rows never change)."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from interaction.tables import metadata

event_type_version = sa.Table(
    "event_type_version",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("json_schema", JSONB, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
