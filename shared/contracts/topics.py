"""Topic names. One topic per producer keeps each customer's events from that producer in one ordered stream."""

import re

PARTNER_EVENTS = "partner.events"
INTERACTION_EVENTS = "interaction.events"
SEGMENTATION_EVENTS = "segmentation.events"
CLV_EVENTS = "clv.events"
LIFECYCLE_EVENTS = "lifecycle.events"

ALL = [PARTNER_EVENTS, INTERACTION_EVENTS, SEGMENTATION_EVENTS, CLV_EVENTS, LIFECYCLE_EVENTS]

# A partner on Kafka writes to a topic of its own, `partner.events.<partner id>`, which only its SASL principal
# may write (ACLs), and reads its rejections from that topic's DLQ, which only it may read. The topic names the
# partner, so the consumer binds topic -> partner -> the one source it may use (docs/security.md, class 3).
# `partner.events` itself is for the platform's own producers (no partner may write it).
PARTNER_ID_ON_KAFKA = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")  # topic-name characters, not `*.dlq`
PARTNER_TOPICS_PATTERN = r"partner\.events(\.(?!.*\.dlq$)[A-Za-z0-9._-]+)?"  # the shared topic and every partner's


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def partner_topic(partner_id: str) -> str:
    if not PARTNER_ID_ON_KAFKA.match(partner_id) or partner_id.endswith(".dlq"):
        raise ValueError(
            f"partner id {partner_id!r} cannot name a Kafka topic (letters, digits, '.', '_', '-'; not ending in '.dlq')"
        )
    return f"{PARTNER_EVENTS}.{partner_id}"


def partner_of_topic(topic: str) -> str | None:
    """The partner whose own topic this is (topic without the deployment's prefix); None for `partner.events`."""
    return topic[len(PARTNER_EVENTS) + 1 :] if topic.startswith(PARTNER_EVENTS + ".") else None
