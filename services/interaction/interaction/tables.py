"""Every table of the interaction schema, so Alembic sees one metadata (features define their own tables)."""

from shared.db import schema_metadata
from shared.messaging.tables import messaging_tables

from interaction.settings import SCHEMA

metadata = schema_metadata(SCHEMA)
messaging = messaging_tables(metadata)
