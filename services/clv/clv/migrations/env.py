from shared.migrations import run_env

import clv.fits.models
import clv.profitability.models
import clv.propositions.models
import clv.scoring.models
import clv.transaction_summary.models  # noqa: F401 - imported for the tables they register on the metadata
from clv.tables import metadata

run_env(metadata)
