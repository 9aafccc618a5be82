from shared.migrations import run_env

import segmentation.exports.models
import segmentation.profiles.models
import segmentation.purchase_summary.models
import segmentation.runs.models
import segmentation.schemes.models
import segmentation.segments.models  # noqa: F401 - imported for the tables they register on the metadata
from segmentation.tables import metadata

run_env(metadata)
