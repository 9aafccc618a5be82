"""Topic names. One topic per producer keeps each customer's events from that producer in one ordered stream."""

PARTNER_EVENTS = "partner.events"
INTERACTION_EVENTS = "interaction.events"
SEGMENTATION_EVENTS = "segmentation.events"
CLV_EVENTS = "clv.events"
LIFECYCLE_EVENTS = "lifecycle.events"

ALL = [PARTNER_EVENTS, INTERACTION_EVENTS, SEGMENTATION_EVENTS, CLV_EVENTS, LIFECYCLE_EVENTS]


def dlq(topic: str) -> str:
    return f"{topic}.dlq"
