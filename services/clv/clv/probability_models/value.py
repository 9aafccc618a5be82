"""Customer lifetime value: margin × expected spend × discounted expected purchases, vectorised; and the wallet
behind potential value."""

import numpy as np

from clv.probability_models import special
from clv.probability_models.gamma_gamma import GammaGamma

# A month in days: scoring's periods (current, horizon) and predictions count months of this length.
DAYS_PER_MONTH = 365.25 / 12


def discounted_clv(
    transactions,
    spend: GammaGamma,
    x,
    t_x,
    T,
    zbar,
    *,
    months: int = 12,
    units_per_month: float = 30.0,
    monthly_discount_rate: float = 0.01,
    margin: float = 1.0,
) -> np.ndarray:
    """Σ_{k=1..months} margin · E[spend] · (E[Y(k·u)] − E[Y((k−1)·u)]) / (1 + d)^k per customer.

    This is the definition `lifetimes.GammaGammaFitter.customer_lifetime_value` uses (time in the model's
    unit, `u` units per month, discounting monthly), computed on a (distinct (x, T)) × month array instead of
    a loop over months of whole-population predictions.
    """
    if months < 1:
        raise ValueError("months must be at least 1")
    if monthly_discount_rate <= -1:
        raise ValueError("discount rate must be above -100%")
    if not 0 < margin <= 1:
        raise ValueError("margin must be in (0, 1]")
    purchases = transactions.discounted_purchases(
        x, t_x, T, period=units_per_month, periods=months, discount_rate=monthly_discount_rate
    )
    return margin * spend.expected_spend(x, zbar) * purchases


def wallet_ratio(transactions, spend, x, quantile: float = 0.9) -> np.ndarray:
    """Wallet ÷ expected spend of an alive customer: the high-quantile estimate of what the customer could spend.

    Following Perlich, Rosset et al. (2007), the wallet is a high quantile of the spend a customer's information
    is consistent with, not its mean. Here that information is the customer's own history under the fitted
    models: given x repeat purchases in T and being alive, the purchase rate is λ ~ Γ(r + x, α + T) (BG/NBD,
    MBG/NBD and Pareto/NBD alike) and the spend per purchase p/ν with ν ~ Γ(px + q, γ + x z̄) (Gamma-Gamma).
    The wallet buys at the `quantile` of both — as often and as much per order as the best `1 − quantile` of
    customers with this history would: Q_τ(λ) · Q_τ(p/ν) against E[λ] · E[p/ν], i.e.

        ratio = gammaincinv(r + x, τ) / (r + x) × (px + q − 1) / gammaincinv(px + q, 1 − τ).

    The scales (α + T, γ + x z̄) cancel, so the ratio depends on x alone: computed once per distinct x. It
    shrinks towards 1 as the history grows (a best customer's rate is well known) and is large for a one-time
    buyer (little is known, much is possible).
    """
    if not 0.5 < quantile < 1:
        raise ValueError("the wallet quantile must be in (0.5, 1)")
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all() or (x < 0).any():
        raise ValueError("x must be finite and not negative")
    ux, inverse = np.unique(x, return_inverse=True)
    shape_rate = transactions.r + ux
    ratio = special.gammaincinv(shape_rate, quantile) / shape_rate
    if isinstance(spend, GammaGamma):  # a population-mean spend (no heterogeneity) has no spend headroom
        shape_spend = spend.p * ux + spend.q
        ratio = ratio * ((shape_spend - 1) / special.gammaincinv(shape_spend, 1 - quantile))
    return ratio[inverse.ravel()]
