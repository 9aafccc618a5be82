from shared.migrations import run_env

import gateway.keys.models  # registers the tables on the metadata
import gateway.webhooks.models  # noqa: F401
from gateway.tables import metadata

run_env(metadata)
