from shared.migrations import run_env

import segmentation.purchase_summary.models  # noqa: F401 - registers the tables on the metadata
from segmentation.tables import metadata

run_env(metadata)
