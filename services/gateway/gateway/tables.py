"""Every table of the gateway schema hangs off this metadata (features define their own tables)."""

from shared.db import schema_metadata
from shared.messaging.tables import messaging_tables

from gateway.settings import SCHEMA

metadata = schema_metadata(SCHEMA)
messaging = messaging_tables(metadata)
