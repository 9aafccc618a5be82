from shared.migrations import run_env

# Importing the models registers their tables on the metadata.
import segmentation.exports.models
import segmentation.profiles.models
import segmentation.purchase_summary.models
import segmentation.runs.models
import segmentation.schemes.models
import segmentation.segments.models  # noqa: F401
from segmentation.tables import metadata

run_env(metadata)
