from shared.migrations import run_env

import gateway.keys.models
import gateway.webhooks.models  # noqa: F401 - imported for the tables they register on the metadata
from gateway.tables import metadata

run_env(metadata)
