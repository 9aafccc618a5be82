"""Buy-till-you-die models written for this service: pure numpy/scipy, log-space, fitted on collapsed statistics.

`BetaGeo` (BG/NBD), `ModifiedBetaGeo` (MBG/NBD), `ParetoNBD` and `GammaGamma` share one maximum-likelihood
driver (`fitting.fit`): L-BFGS-B on log-parameters over the unique (x, t_x, T) rows weighted by their count,
convergence checked and reported, standard errors from the Hessian of the log-likelihood.
"""

from clv.probability_models.data import Summary, collapse
from clv.probability_models.fitting import FitError, FitResult
from clv.probability_models.gamma_gamma import GammaGamma, PopulationMeanSpend
from clv.probability_models.transactions import BetaGeo, ModifiedBetaGeo, ParetoNBD
from clv.probability_models.value import discounted_clv, wallet_ratio

MODELS = {m.name: m for m in (BetaGeo, ModifiedBetaGeo, ParetoNBD)}

__all__ = [
    "MODELS",
    "BetaGeo",
    "FitError",
    "FitResult",
    "GammaGamma",
    "ModifiedBetaGeo",
    "ParetoNBD",
    "PopulationMeanSpend",
    "Summary",
    "collapse",
    "discounted_clv",
    "wallet_ratio",
]
