"""Customer lifetime value: margin × expected spend × discounted expected purchases, vectorised."""

import numpy as np

from clv.models.gamma_gamma import GammaGamma


def discounted_clv(transactions, spend: GammaGamma, x, t_x, T, zbar, *, months: int = 12,
                   units_per_month: float = 30.0, monthly_discount_rate: float = 0.01,
                   margin: float = 1.0) -> np.ndarray:
    """Σ_{k=1..months} margin · E[spend] · (E[Y(k·u)] − E[Y((k−1)·u)]) / (1 + d)^k per customer.

    This is the definition `lifetimes.GammaGammaFitter.customer_lifetime_value` uses (time in the model's
    unit, `u` units per month, discounting monthly), computed on a (distinct (x, T)) × month array instead of
    a loop over months of whole-population predictions.
    """
    if months < 1:
        raise ValueError("months must be at least 1")
    if monthly_discount_rate <= -1:
        raise ValueError("discount rate must be above -100%")
    purchases = transactions.discounted_purchases(x, t_x, T, period=units_per_month, periods=months,
                                                  discount_rate=monthly_discount_rate)
    return margin * spend.expected_spend(x, zbar) * purchases
