from shared.migrations import run_env

import interaction.customers.models  # registers the tables on the metadata
import interaction.event_types.models
import interaction.segment_copy.models  # noqa: F401
from interaction.tables import metadata

run_env(metadata)
