"""scipy.special's functions, imported on first use: `special.gammaln(x)` is scipy.special's `gammaln`.

scipy.special is not imported with the clv app, as scipy.optimize is not (`fitting.py`): loaded at import it
held ~29 MB more in every clv process (P7: ≤ 150 MB per process), which needs it only once it fits or scores
with a model. The first lookup of a name imports scipy.special and keeps the function here, so the next ones
are a plain module attribute.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # a module's dunder looked up by tools (e.g. __path__): not scipy's
        raise AttributeError(name)
    import scipy.special

    function = getattr(scipy.special, name)
    globals()[name] = function
    return function
