"""The AsyncAPI 3.0 document, generated from the pydantic contracts in `shared/contracts` (never hand-written).

Channels are the topics; messages are the event types, each a CloudEvents 1.0 envelope whose `data` is the
payload model's JSON Schema. Partners send on their own `partner.events.{partner}` over the authenticated
partner listener and read their rejections on its DLQ (docs/security.md, class 3); the services publish the
domain topics (the CRM sends, webhook subscribers and other consumers receive).
"""

from typing import Any

from pydantic import BaseModel

from shared.contracts import clv, interaction, lifecycle, partner, segmentation, topics
from shared.contracts.envelope import Envelope, Payload

REF = "#/components/schemas/"
# topic → (schema prefix, event types, the CRM's action on it, who produces it)
CHANNELS: dict[str, tuple[str, dict[str, type[Payload]], str, str]] = {
    topics.PARTNER_EVENTS: ("partner", partner.PARTNER_EVENT_TYPES, "receive",
                            "The platform's own producers (imports, bridges) on the internal listener; no partner "
                            "may write it. Partners use `partner.events.{partner}` (or POST /v1/events)."),
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


PARTNER_SERVER = "kafka-partners"
PARTNER_SETUP = (
    "Partners connect to the partner listener (port 9094) with SASL_PLAINTEXT and SCRAM-SHA-512, as the "
    "principal the operator created for them (`deploy/kafka-partner.sh <partner>`: credential, topics, ACLs). "
    "A partner may write only `partner.events.{partner}` and read only `partner.events.{partner}.dlq` (consumer "
    "group `partner-dlq.{partner}`). Client settings: `security.protocol=SASL_PLAINTEXT`, "
    "`sasl.mechanism=SCRAM-SHA-512`, the username (the partner id) and password; producers should be "
    "idempotent (`acks=all`). Put TLS in front of this listener outside a trusted network (docs/security.md)."
)


def _partner_channels(channels: dict[str, Any], operations: dict[str, Any], messages: dict[str, Any]) -> None:
    """The per-partner topic (events in) and its DLQ (the partner's rejections out), on the partner server."""
    parameters = {"partner": {"description": "The partner id: the `source` every event on the topic must carry."}}
    shared = channels[topics.PARTNER_EVENTS.replace(".", "-")]
    channels["partner-events-own"] = {
        "address": topics.PARTNER_EVENTS + ".{partner}", "parameters": parameters,
        "servers": [{"$ref": f"#/servers/{PARTNER_SERVER}"}], "messages": shared["messages"],
        "description": "A partner's own topic: only its principal may write it, and an event whose `source` is not "
                       "the partner is rejected to the DLQ with the reason.",
    }
    operations["receive-partner-events-own"] = {
        "action": "receive", "channel": {"$ref": "#/channels/partner-events-own"},
        "summary": "The CRM ingests a partner's events (source bound to the partner)",
        "security": [{"$ref": "#/components/securitySchemes/partnerScram"}],
        "messages": [{"$ref": f"#/channels/partner-events-own/messages/{m}"} for m in shared["messages"]],
    }
    messages["partner.rejected"] = {
        "name": "rejected", "title": "A rejected partner event",
        "summary": "The partner's message as it sent it (bytes and headers), with why it was rejected.",
        "payload": {"description": "The original message value, unchanged (it may not be valid JSON)."},
        "headers": {"type": "object", "properties": {
            "dlq_error": {"type": "string", "description": "Why the event was rejected."},
            "dlq_topic": {"type": "string"}, "dlq_partition": {"type": "string"}, "dlq_offset": {"type": "string"},
            "dlq_consumer": {"type": "string"}, "dlq_attempts": {"type": "string"},
        }, "required": ["dlq_error"]},
    }
    channels["partner-events-own-dlq"] = {
        "address": topics.dlq(topics.PARTNER_EVENTS + ".{partner}"), "parameters": parameters,
        "servers": [{"$ref": f"#/servers/{PARTNER_SERVER}"}],
        "messages": {"partner.rejected": {"$ref": "#/components/messages/partner.rejected"}},
        "description": "A partner's rejected events (invalid, or under another source); only that partner may "
                       "read it.",
    }
    operations["send-partner-events-own-dlq"] = {
        "action": "send", "channel": {"$ref": "#/channels/partner-events-own-dlq"},
        "summary": "The CRM returns a partner's rejected events to it",
        "security": [{"$ref": "#/components/securitySchemes/partnerScram"}],
        "messages": [{"$ref": "#/channels/partner-events-own-dlq/messages/partner.rejected"}],
    }


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
    _partner_channels(channels, operations, messages)
    for channel in channels.values():  # the rest are on the internal listener
        channel.setdefault("servers", [{"$ref": "#/servers/kafka"}])
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
        "servers": {
            "kafka": {"host": "kafka:9092", "protocol": "kafka",
                      "description": "The platform's services (internal network only). Topic names may carry a "
                                     "deployment prefix."},
            PARTNER_SERVER: {"host": "localhost:9094", "protocol": "kafka", "description": PARTNER_SETUP,
                             "security": [{"$ref": "#/components/securitySchemes/partnerScram"}]},
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages, "schemas": schemas,
            "securitySchemes": {"partnerScram": {
                "type": "scramSha512",
                "description": "SASL SCRAM-SHA-512 over SASL_PLAINTEXT; the username is the partner id. " + PARTNER_SETUP,
            }},
        },
    }


def add_custom_types(doc: dict[str, Any], types: list[dict[str, Any]]) -> dict[str, Any]:
    """The document with interaction's registered custom event types (`GET /v1/event-types`) as partner messages,
    one per version; `doc` is a fresh copy the caller owns. Each version's schema becomes a component (its local
    `#/…` references re-rooted there); an event names the version in `dataschema`, or omits it for the newest."""
    schemas, messages = doc["components"]["schemas"], doc["components"]["messages"]
    newest = {t["name"]: max(v["version"] for v in types if v["name"] == t["name"]) for t in types}
    added = []
    for t in types:
        name, version = t["name"], t["version"]
        component = f"custom.{name}.v{version}"
        schemas[component] = _reroot(t["schema"], REF + component)
        dataschema: dict[str, Any] = {"const": t["dataschema"]}
        required = ["type", "data"]
        if version != newest[name]:
            required.append("dataschema")  # without it, an event is checked against the newest version
        msg_id = _msg_id("partner.custom", f"{name}.v{version}")
        messages[msg_id] = {
            "name": f"{name} v{version}", "title": f"{name} (v{version}, custom)",
            "summary": t.get("description") or f"Custom event type {name}, registered by an admin.",
            "description": "A custom event type (POST /v1/event-types). `data` may also carry `identifiers` and "
                           "`occurred_at` as in every partner event, if the registered schema allows them.",
            "contentType": "application/cloudevents+json",
            "payload": {"allOf": [{"$ref": REF + "cloudevents.CloudEvent"}, {
                "type": "object", "required": required, "properties": {
                    "type": {"const": name}, "dataschema": dataschema, "data": {"$ref": REF + component}}}]},
            "bindings": {"kafka": {"key": {"type": "string", "description": "The partner's customer id (subject)."}}},
        }
        added.append(msg_id)
    channel_id = topics.PARTNER_EVENTS.replace(".", "-")
    for channel, operation in ((channel_id, f"receive-{channel_id}"), ("partner-events-own", "receive-partner-events-own")):
        for msg_id in added:
            doc["channels"][channel]["messages"][msg_id] = {"$ref": f"#/components/messages/{msg_id}"}
            doc["operations"][operation]["messages"].append({"$ref": f"#/channels/{channel}/messages/{msg_id}"})
    return doc


def _reroot(node: Any, root: str) -> Any:
    if isinstance(node, dict):
        return {k: (root + v[1:] if k in ("$ref", "$dynamicRef") and isinstance(v, str) and v.startswith("#")
                    else _reroot(v, root)) for k, v in node.items()}
    if isinstance(node, list):
        return [_reroot(v, root) for v in node]
    return node
