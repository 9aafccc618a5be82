from shared.migrations import run_env

import lifecycle.campaigns.models
import lifecycle.customers.models
import lifecycle.pipelines.models
import lifecycle.rules.models
import lifecycle.stages.models  # noqa: F401 - imported for the tables they register on the metadata
from lifecycle.tables import metadata

run_env(metadata)
