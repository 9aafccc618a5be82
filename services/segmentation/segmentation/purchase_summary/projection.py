"""`purchase_summary` (per customer and currency) is now re-derived by `segmentation.profiles.projection`.

Kept as the name the messaging benchmark imports: the subscription folds purchases the same way.
"""

from shared.messaging.inbox import Subscription

from segmentation.profiles.projection import interaction_subscription


def purchases_subscription() -> Subscription:
    return interaction_subscription()
