from shared.migrations import run_env

import interaction.customers.models
import interaction.event_types.models
import interaction.segment_copy.models  # noqa: F401 - imported for the tables they register on the metadata
from interaction.tables import metadata

run_env(metadata)
