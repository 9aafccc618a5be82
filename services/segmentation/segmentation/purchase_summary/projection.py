"""`purchase_summary` (per customer and currency) is now re-derived by `segmentation.profiles.projection`.

Kept under the names the messaging tests and benchmark import: the same folding of purchases.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.messaging.inbox import ConsumedEvent, Subscription

from segmentation.profiles.projection import apply_interaction_events, interaction_subscription


async def apply_purchases(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    await apply_interaction_events(session, events)


def purchases_subscription() -> Subscription:
    return interaction_subscription()
