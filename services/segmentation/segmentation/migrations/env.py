from shared.migrations import run_env

# Importing the models registers their tables on the metadata.
import segmentation.profiles.models  # noqa: F401
import segmentation.purchase_summary.models  # noqa: F401
import segmentation.runs.models  # noqa: F401
import segmentation.schemes.models  # noqa: F401
import segmentation.segments.models  # noqa: F401
from segmentation.tables import metadata

run_env(metadata)
