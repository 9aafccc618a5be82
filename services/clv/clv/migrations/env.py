from shared.migrations import run_env

import clv.transaction_summary.models  # noqa: F401 - registers the tables on the metadata
from clv.tables import metadata

run_env(metadata)
