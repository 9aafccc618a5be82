from shared.migrations import run_env

import lifecycle.campaigns.models  # noqa: F401 - registers the tables on the metadata
import lifecycle.customers.models  # noqa: F401
import lifecycle.pipelines.models  # noqa: F401
import lifecycle.rules.models  # noqa: F401
import lifecycle.stages.models  # noqa: F401
from lifecycle.tables import metadata

run_env(metadata)
