from shared.migrations import run_env

import clv.fits.models  # registers the tables on the metadata
import clv.profitability.models
import clv.propositions.models
import clv.scoring.models
import clv.transaction_summary.models  # noqa: F401
from clv.tables import metadata

run_env(metadata)
