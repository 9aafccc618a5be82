from shared.migrations import run_env

import clv.fits.models  # noqa: F401 - registers the tables on the metadata
import clv.profitability.models  # noqa: F401
import clv.propositions.models  # noqa: F401
import clv.scoring.models  # noqa: F401
import clv.transaction_summary.models  # noqa: F401
from clv.tables import metadata

run_env(metadata)
