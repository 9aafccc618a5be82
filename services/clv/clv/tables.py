"""Every table of the clv schema hangs off this metadata (features define their own tables)."""

from shared.db import schema_metadata
from shared.messaging.tables import messaging_tables

from clv.settings import SCHEMA

metadata = schema_metadata(SCHEMA)
messaging = messaging_tables(metadata)
