"""The domain events a webhook can subscribe to: every event type of the four domain services' contracts."""

from shared.contracts.clv import CLV_EVENT_TYPES
from shared.contracts.envelope import Payload
from shared.contracts.interaction import INTERACTION_EVENT_TYPES
from shared.contracts.lifecycle import LIFECYCLE_EVENT_TYPES
from shared.contracts.segmentation import SEGMENTATION_EVENT_TYPES
from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS, LIFECYCLE_EVENTS, SEGMENTATION_EVENTS

DOMAIN_TOPICS: dict[str, dict[str, type[Payload]]] = {
    INTERACTION_EVENTS: INTERACTION_EVENT_TYPES,
    SEGMENTATION_EVENTS: SEGMENTATION_EVENT_TYPES,
    CLV_EVENTS: CLV_EVENT_TYPES,
    LIFECYCLE_EVENTS: LIFECYCLE_EVENT_TYPES,
}
DOMAIN_EVENT_TYPES: dict[str, type[Payload]] = {t: m for types in DOMAIN_TOPICS.values() for t, m in types.items()}
