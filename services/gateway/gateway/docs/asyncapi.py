"""The AsyncAPI 3.0 document, generated from the pydantic contracts in `shared/contracts` (never hand-written).

Channels are the topics; messages are the event types, each a CloudEvents 1.0 envelope whose `data` is the
payload model's JSON Schema. Partners send on `partner.events` (the CRM receives); the services publish
the domain topics (the CRM sends, webhook subscribers and other consumers receive).
"""

from typing import Any

from pydantic import BaseModel

from shared.contracts import clv, interaction, lifecycle, partner, segmentation, topics
from shared.contracts.envelope import Envelope, Payload

REF = "#/components/schemas/"
# topic → (schema prefix, event types, the CRM's action on it, who produces it)
CHANNELS: dict[str, tuple[str, dict[str, type[Payload]], str, str]] = {
    topics.PARTNER_EVENTS: ("partner", partner.PARTNER_EVENT_TYPES, "receive",
                            "Partner systems publish here (or POST /v1/events): `source` is the partner id, "
                            "`subject` the partner's customer id."),
    topics.INTERACTION_EVENTS: ("interaction", interaction.INTERACTION_EVENT_TYPES, "send",
                                f"Published by the interaction service (source {interaction.SOURCE})."),
    topics.SEGMENTATION_EVENTS: ("segmentation", segmentation.SEGMENTATION_EVENT_TYPES, "send",
                                 f"Published by the segmentation service (source {segmentation.SOURCE})."),
    topics.CLV_EVENTS: ("clv", clv.CLV_EVENT_TYPES, "send", f"Published by the clv service (source {clv.SOURCE})."),
    topics.LIFECYCLE_EVENTS: ("lifecycle", lifecycle.LIFECYCLE_EVENT_TYPES, "send",
                              f"Published by the lifecycle service (source {lifecycle.SOURCE})."),
}


def _schema(model: type[BaseModel], name: str, prefix: str, schemas: dict[str, Any]) -> str:
    """Adds the model (and what it references) under `<prefix>.<Name>`; returns its component name."""
    doc = model.model_json_schema(ref_template=REF + prefix + ".{model}", mode="serialization")
    for def_name, definition in doc.pop("$defs", {}).items():
        schemas.setdefault(f"{prefix}.{def_name}", definition)
    schemas[f"{prefix}.{name}"] = doc
    return f"{prefix}.{name}"


def _msg_id(prefix: str, event_type: str) -> str:
    return f"{prefix}.{event_type}".replace("_", "-")


def build() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    envelope = _schema(Envelope, "CloudEvent", "cloudevents", schemas)
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, (prefix, types, action, description) in CHANNELS.items():
        channel_id = topic.replace(".", "-")
        channel_messages = {}
        for event_type, model in types.items():
            payload = _schema(model, model.__name__, prefix, schemas)
            msg_id = _msg_id(prefix, event_type)
            messages[msg_id] = {
                "name": event_type,
                "title": f"{event_type} (v{model.VERSION})",
                "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else event_type,
                "contentType": "application/cloudevents+json",
                "payload": {"allOf": [
                    {"$ref": REF + envelope},
                    {"type": "object", "required": ["type", "data"], "properties": {
                        "type": {"const": event_type},
                        "dataschema": {"const": model.dataschema()},
                        "data": {"$ref": REF + payload},
                    }},
                ]},
                "bindings": {"kafka": {"key": {"type": "string", "description":
                             "The customer id (partner events: the partner's customer id, the subject)."}}},
            }
            channel_messages[msg_id] = {"$ref": f"#/components/messages/{msg_id}"}
        channels[channel_id] = {"address": topic, "description": description, "messages": channel_messages}
        operations[f"{action}-{channel_id}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": ("The CRM ingests partner events" if action == "receive"
                        else f"The CRM publishes {topic}"),
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel_messages],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Customer-value CRM events",
            "version": "1.0.0",
            "description": "Every event is a CloudEvents 1.0 envelope (structured JSON, or the Kafka binary binding "
                           "with `ce_*` headers). Producers may add optional fields; consumers ignore what they do "
                           "not know. Generated from the pydantic contracts in `shared/contracts`.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {"kafka": {"host": "kafka:9092", "protocol": "kafka",
                              "description": "Topic names may carry a deployment prefix."}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
