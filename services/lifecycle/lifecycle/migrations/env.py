from shared.migrations import run_env

import lifecycle.campaigns.models  # registers the tables on the metadata
import lifecycle.customers.models
import lifecycle.pipelines.models
import lifecycle.rules.models
import lifecycle.stages.models  # noqa: F401
from lifecycle.tables import metadata

run_env(metadata)
