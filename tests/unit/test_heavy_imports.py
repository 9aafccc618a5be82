"""A service process loads the numerical libraries it fits with only when it fits (P7: ≤ 150 MB per process).

scikit-learn and scipy.optimize held ~105 MB in every segmentation process and ~25 MB in every clv process
from import on, though they run only in clustering runs and model fits; scipy.special ~19 MB in every clv
process, which needs it only to fit or to score with a model (clv/probability_models/special.py). Each service's
app is imported in a
fresh interpreter, as `python -m <service> serve` does, and must not have loaded them.
"""

import subprocess
import sys

import pytest

NOT_AT_IMPORT = {
    "segmentation": ["sklearn", "scipy.optimize"],
    "clv": ["sklearn", "scipy.optimize", "scipy.special"],
}


@pytest.mark.parametrize("service", sorted(NOT_AT_IMPORT))
def test_the_app_does_not_load_what_only_a_fit_needs(service):
    code = f"import sys, {service}.app; print(','.join(m for m in {NOT_AT_IMPORT[service]!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"{service}.app loads {loaded} at import"
