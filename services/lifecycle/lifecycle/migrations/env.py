from shared.migrations import run_env

import lifecycle.stages.models  # noqa: F401 - registers the tables on the metadata
from lifecycle.tables import metadata

run_env(metadata)
