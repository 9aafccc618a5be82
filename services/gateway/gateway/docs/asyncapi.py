"""The AsyncAPI 3.0 document, generated from the pydantic contracts in `shared/contracts` (never hand-written).

Channels are the topics; messages are the event types, each a CloudEvents 1.0 envelope whose `data` is the
payload model's JSON Schema. Partners send on their own `partner.events.{partner}` over the authenticated
partner listener and read their rejections on its DLQ (docs/security.md, class 3); the services publish the
domain topics (the CRM sends, webhook subscribers and other consumers receive).
"""

import re
from typing import Any

import jsonschema_rs
from pydantic import BaseModel

from shared.contracts import clv, interaction, lifecycle, partner, segmentation, topics
from shared.contracts.envelope import MAX_EVENT_BYTES, Envelope, Payload
from shared.contracts.formats import EXTRA_FIELD, NO_NUL, NOT_BLANK, NUMBER_BOUND, resolve_placeholders

REF = "#/components/schemas/"
# topic → (schema prefix, event types, the CRM's action on it, who produces it)
CHANNELS: dict[str, tuple[str, dict[str, type[Payload]], str, str]] = {
    topics.PARTNER_EVENTS: (
        "partner",
        partner.PARTNER_EVENT_TYPES,
        "receive",
        "The platform's own producers (imports, bridges) on the internal listener; no partner "
        "may write it. Partners use `partner.events.{partner}` (or POST /v1/events).",
    ),
    topics.INTERACTION_EVENTS: (
        "interaction",
        interaction.INTERACTION_EVENT_TYPES,
        "send",
        f"Published by the interaction service (source {interaction.SOURCE}).",
    ),
    topics.SEGMENTATION_EVENTS: (
        "segmentation",
        segmentation.SEGMENTATION_EVENT_TYPES,
        "send",
        f"Published by the segmentation service (source {segmentation.SOURCE}).",
    ),
    topics.CLV_EVENTS: ("clv", clv.CLV_EVENT_TYPES, "send", f"Published by the clv service (source {clv.SOURCE})."),
    topics.LIFECYCLE_EVENTS: (
        "lifecycle",
        lifecycle.LIFECYCLE_EVENT_TYPES,
        "send",
        f"Published by the lifecycle service (source {lifecycle.SOURCE}).",
    ),
}


def _schema(model: type[BaseModel], name: str, prefix: str, schemas: dict[str, Any]) -> str:
    """Adds the model (and what it references) under `<prefix>.<Name>`; returns its component name."""
    doc = model.model_json_schema(ref_template=REF + prefix + ".{model}", mode="serialization")
    for def_name, definition in doc.pop("$defs", {}).items():
        schemas.setdefault(f"{prefix}.{def_name}", _harden(_open(definition)))
    schemas[f"{prefix}.{name}"] = _harden(_open(doc))
    return f"{prefix}.{name}"


_VALUES = {"examples", "default", "const", "enum"}  # hold values, not schemas


def _harden(node: Any) -> Any:
    """Writes the rules every value obeys into the schema: no NUL in a string or a key (the stores cannot hold
    it; a lone surrogate is not valid JSON text either), numbers within 64-bit integers. Strings with a pattern,
    format or enum are already narrower. Also puts computed patterns (the phone numbers') in place of their placeholders."""
    if isinstance(node, list):
        return [_harden(n) for n in node]
    if not isinstance(node, dict):
        return node
    resolve_placeholders(node)
    out = {k: (v if k in _VALUES else _harden(v)) for k, v in node.items()}
    if out.get("type") == "string" and not {"const", "enum", "pattern", "format"} & out.keys():
        out["pattern"] = NO_NUL
    if out.get("type") in ("integer", "number"):
        # JSON integers beyond 64 bits cannot be stored (a bound on every number: 1e20 and 100000000000000000000
        # are one value to a schema validator, the first a double and the second an integer to the ingestion).
        out.setdefault("minimum", -NUMBER_BOUND)
        out.setdefault("maximum", NUMBER_BOUND)
    if out.get("type") == "object" and "additionalProperties" in out:
        out["propertyNames"] = {**out.get("propertyNames", {}), "pattern": NO_NUL}
    return out


def _open(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's schema with the rule for fields it does not list (ignored, but they must be storable)."""
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = {"$ref": REF + "cloudevents.ExtraField"}
    return schema


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
        "address": topics.PARTNER_EVENTS + ".{partner}",
        "parameters": parameters,
        "servers": [{"$ref": f"#/servers/{PARTNER_SERVER}"}],
        "messages": shared["messages"],
        "description": "A partner's own topic: only its principal may write it, and an event whose `source` is not "
        "the partner is rejected to the DLQ with the reason.",
    }
    operations["receive-partner-events-own"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/partner-events-own"},
        "summary": "The CRM ingests a partner's events (source bound to the partner)",
        "security": [{"$ref": "#/components/securitySchemes/partnerScram"}],
        "messages": [{"$ref": f"#/channels/partner-events-own/messages/{m}"} for m in shared["messages"]],
    }
    messages["partner.rejected"] = {
        "name": "rejected",
        "title": "A rejected partner event",
        "summary": "The partner's message as it sent it (bytes and headers), with why it was rejected.",
        "payload": {"description": "The original message value, unchanged (it may not be valid JSON)."},
        "headers": {
            "type": "object",
            "properties": {
                "dlq_error": {"type": "string", "description": "Why the event was rejected."},
                "dlq_topic": {"type": "string"},
                "dlq_partition": {"type": "string"},
                "dlq_offset": {"type": "string"},
                "dlq_consumer": {"type": "string"},
                "dlq_attempts": {"type": "string"},
            },
            "required": ["dlq_error"],
        },
    }
    channels["partner-events-own-dlq"] = {
        "address": topics.dlq(topics.PARTNER_EVENTS + ".{partner}"),
        "parameters": parameters,
        "servers": [{"$ref": f"#/servers/{PARTNER_SERVER}"}],
        "messages": {"partner.rejected": {"$ref": "#/components/messages/partner.rejected"}},
        "description": "A partner's rejected events (invalid, or under another source); only that partner may read it.",
    }
    operations["send-partner-events-own-dlq"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/partner-events-own-dlq"},
        "summary": "The CRM returns a partner's rejected events to it",
        "security": [{"$ref": "#/components/securitySchemes/partnerScram"}],
        "messages": [{"$ref": "#/channels/partner-events-own-dlq/messages/partner.rejected"}],
    }


EXAMPLE_TIME = "2026-01-15T10:30:00Z"
EXAMPLE_PARTNER, EXAMPLE_SUBJECT = "shop-eu", "C-1001"
EXAMPLE_CUSTOMER = "5b0c3f0e-8a4d-4f51-9c39-2f1e6f2d7a10"
BINDING = "0.5.0"
# The subject a partner must give: its own customer id, not blank, no NUL.
SUBJECT = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": NOT_BLANK,
    "description": "Required: your own id for the customer (not blank). Use it as the Kafka key too.",
}
KEY_RULE = (
    "The key is the customer id, the envelope's `subject`, so one customer's events from one producer are in "
    "one partition, in order. For partners it is advisory: the CRM orders facts by `data.occurred_at` (else "
    "`time`), not by arrival, and is idempotent per (`source`, `id`), so another key loses nothing."
)
ORDERING = (
    "Ordering, the same for every event type: a fact happened at `data.occurred_at` when given, else at the "
    "envelope `time`. Identity, attribute and consent facts are ordered by it (per key the newest wins, "
    "whatever the arrival order); timelines are sorted by it."
)
LIMITS = (
    f"Limits: an event is at most {MAX_EVENT_BYTES // 1024} KiB encoded; an HTTP batch (`POST /v1/events`) at "
    "most 1,000 events and 5 MiB by default (the interaction service's `INGEST_MAX_EVENTS`, "
    "`INGEST_MAX_BYTES`). No string or key may hold NUL (U+0000) or a lone surrogate."
)
VERSIONING = (
    "Versioning: `dataschema` is `urn:crm:schema:<type>:v<version>`; absent means the current version, an "
    "unknown one is rejected with the known ones listed. Within a version fields are only added (optional); "
    "consumers ignore what they do not know."
)
REJECTIONS = (
    "Rejections: over HTTP the 422 answer lists each rejected item with its reason (the others are "
    "stored); on Kafka a rejected event goes, unchanged with its headers, to the DLQ of the topic it was "
    "sent on (`partner.events.{partner}.dlq`, readable only by that partner) with the reason in the "
    "`dlq_error` header."
)
PARTNER_SOURCE = {
    "type": "string",
    "description": "Your partner id: the one your API key or Kafka topic names (another is refused).",
}
BINARY_HEADERS = {
    "type": "object",
    "description": "The Kafka binary binding: the CloudEvents attributes as `ce_<name>` headers (UTF-8 strings) and "
    "only `data` in the message value, with `content-type: application/json`. Structured mode (the "
    "message payload below) sends no `ce_` header and the whole envelope as the value, with "
    "`content-type: application/cloudevents+json`. A message with any `ce_` header is read as "
    "binary; `content-type` is advisory (the value must be JSON either way). Header values must "
    "not contain NUL.",
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "ce_source": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "ce_type": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "ce_subject": SUBJECT,
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_datacontenttype": {
            "type": "string",
            "pattern": NO_NUL,
            "examples": ["application/json"],
            "description": "Advisory, like `content-type`: the value is read as JSON.",
        },
        "ce_dataschema": {"type": "string", "pattern": NO_NUL},
        "ce_correlationid": {"type": "string", "pattern": NO_NUL},
        "content-type": {"type": "string", "enum": ["application/json", "application/cloudevents+json"]},
    },
}


def _example(schema: Any, schemas: dict[str, Any]) -> Any:
    """A small instance of a schema: its examples where given, else the simplest value of its type."""
    if "$ref" in schema:
        return _example(schemas[schema["$ref"].removeprefix(REF)], schemas)
    if schema.get("examples"):
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _example(next((b for b in schema[key] if b.get("type") != "null"), schema[key][0]), schemas)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", ()))
        return {k: _example(v, schemas) for k, v in schema.get("properties", {}).items() if k in required or v.get("examples")}
    if kind == "array":
        return [_example(schema.get("items", {}), schemas)] * schema.get("minItems", 0)
    if kind == "string":
        fmt = {"uuid": EXAMPLE_CUSTOMER, "date-time": EXAMPLE_TIME, "date": EXAMPLE_TIME[:10]}
        if schema.get("format") in fmt:
            return fmt[schema["format"]]
        return next(c for c in ("1.00", "example") if not schema.get("pattern") or re.search(schema["pattern"], c))
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    return {"boolean": True, "null": None}.get(kind)


def _message(
    prefix: str, event_type: str, model: type[Payload], envelope: str, payload: str, source: str, schemas: dict[str, Any]
) -> dict[str, Any]:
    is_partner = prefix == "partner"
    data = partner.EXAMPLES[event_type] if is_partner else _example(schemas[payload], schemas)
    example = {
        "specversion": "1.0",
        "id": f"{'evt' if is_partner else EXAMPLE_CUSTOMER[:8]}-{event_type}-1",
        "source": source,
        "type": event_type,
        "subject": EXAMPLE_SUBJECT if is_partner else str(data.get("customer_id", EXAMPLE_CUSTOMER)),
        "time": EXAMPLE_TIME,
        "datacontenttype": "application/json",
        "dataschema": model.dataschema(),
        "data": data,
    }
    properties: dict[str, Any] = {
        "type": {"const": event_type},
        "dataschema": {"enum": [model.dataschema()], "description": "Optional; the known versions of the type."},
        "data": {"$ref": REF + payload},
    }
    # `data` may be left out (it is `{}` then) where the type has no required field.
    required = ["type", "data"] if schemas[payload].get("required") else ["type"]
    if is_partner:
        properties["subject"] = SUBJECT
        properties["source"] = PARTNER_SOURCE
        required.append("subject")
    message = {
        "name": f"{prefix}.{event_type}",  # unique across channels (`customer.updated` is a partner and a domain type)
        "title": f"{event_type} (v{model.VERSION})",
        "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else event_type,
        "contentType": "application/cloudevents+json",
        "payload": {"allOf": [{"$ref": REF + envelope}, {"type": "object", "required": required, "properties": properties}]},
        "examples": [{"name": "structured", "summary": f"A {event_type} event (structured JSON)", "payload": example}],
        "bindings": {
            "kafka": {
                "bindingVersion": BINDING,
                "key": {"type": "string", "description": "The customer id: the envelope's `subject`. " + KEY_RULE},
            }
        },
    }
    if is_partner:
        message["headers"] = {"$ref": REF + "cloudevents.KafkaBinaryHeaders"}
    return message


def build() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    envelope = _schema(Envelope, "CloudEvent", "cloudevents", schemas)
    # Extension attributes (CloudEvents: names of 1-20 lowercase letters and digits) are ignored, correlationid
    # aside; their value types are CloudEvents'.
    schemas[envelope].pop("propertyNames", None)
    schemas[envelope]["additionalProperties"] = {
        "description": "An extension attribute: ignored.",
        "anyOf": [
            {"type": "string", "maxLength": 1000, "pattern": NO_NUL},
            {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
            {"type": "boolean"},
        ],
    }
    schemas[envelope]["description"] += " " + LIMITS
    schemas["cloudevents.KafkaBinaryHeaders"] = BINARY_HEADERS
    schemas["cloudevents.ExtraField"] = EXTRA_FIELD
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    sources = {
        "partner": EXAMPLE_PARTNER,
        "interaction": interaction.SOURCE,
        "segmentation": segmentation.SOURCE,
        "clv": clv.SOURCE,
        "lifecycle": lifecycle.SOURCE,
    }
    for topic, (prefix, types, action, description) in CHANNELS.items():
        channel_id = topic.replace(".", "-")
        channel_messages = {}
        for event_type, model in types.items():
            payload = _schema(model, model.__name__, prefix, schemas)
            msg_id = _msg_id(prefix, event_type)
            messages[msg_id] = _message(prefix, event_type, model, envelope, payload, sources[prefix], schemas)
            channel_messages[msg_id] = {"$ref": f"#/components/messages/{msg_id}"}
        channels[channel_id] = {"address": topic, "description": description + " " + KEY_RULE, "messages": channel_messages}
        operations[f"{action}-{channel_id}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": ("The CRM ingests partner events" if action == "receive" else f"The CRM publishes {topic}"),
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel_messages],
        }
    _partner_channels(channels, operations, messages)
    for channel in channels.values():  # the rest are on the internal listener
        channel.setdefault("servers", [{"$ref": "#/servers/kafka"}])
    prefix_variable = {
        "topicPrefix": {
            "default": "",
            "examples": ["", "staging."],
            "description": "The deployment's topic prefix (`TOPIC_PREFIX`, empty by default): every topic is this "
            "prefix followed by the channel address, e.g. `staging.partner.events.shop-eu`.",
        }
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Customer-value CRM events",
            "version": "1.0.0",
            "description": "Every event is a CloudEvents 1.0 envelope (structured JSON, or the Kafka binary binding "
            "with `ce_*` headers). Producers may add optional fields; consumers ignore what they do "
            "not know. Generated from the pydantic contracts in `shared/contracts`.\n\n"
            + "\n\n".join([ORDERING, KEY_RULE, LIMITS, VERSIONING, REJECTIONS]),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "kafka": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "pathname": "/{topicPrefix}",
                "variables": prefix_variable,
                "description": "The platform's services (internal network only). Topic names carry the "
                "deployment's prefix (`topicPrefix`).",
            },
            PARTNER_SERVER: {
                "host": "localhost:9094",
                "protocol": "kafka",
                "pathname": "/{topicPrefix}",
                "variables": prefix_variable,
                "description": PARTNER_SETUP,
                "security": [{"$ref": "#/components/securitySchemes/partnerScram"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "partnerScram": {
                    "type": "scramSha512",
                    "description": "SASL SCRAM-SHA-512 over SASL_PLAINTEXT; the username is the partner id. " + PARTNER_SETUP,
                }
            },
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
        # With the rules every partner event obeys (no NUL; unlisted fields storable) written in.
        schemas[component] = _harden(_open(_reroot(t["schema"], REF + component)))
        dataschema: dict[str, Any] = {"const": t["dataschema"]}
        required = ["type", "data"]
        if version != newest[name]:
            required.append("dataschema")  # without it, an event is checked against the newest version
        msg_id = _msg_id("partner.custom", f"{name}.v{version}")
        properties = {
            "type": {"const": name},
            "dataschema": dataschema,
            "data": {"$ref": REF + component},
            "subject": SUBJECT,
            "source": PARTNER_SOURCE,
        }
        messages[msg_id] = {
            "name": f"partner.custom.{name}.v{version}",
            "title": f"{name} (v{version}, custom)",
            "summary": t.get("description") or f"Custom event type {name}, registered by an admin.",
            "description": "A custom event type (POST /v1/event-types). `data` may also carry `identifiers` and "
            "`occurred_at` as in every partner event, if the registered schema allows them. " + ORDERING,
            "contentType": "application/cloudevents+json",
            "payload": {
                "allOf": [
                    {"$ref": REF + "cloudevents.CloudEvent"},
                    {"type": "object", "required": [*required, "subject"], "properties": properties},
                ]
            },
            "headers": {"$ref": REF + "cloudevents.KafkaBinaryHeaders"},
            "bindings": {
                "kafka": {
                    "bindingVersion": BINDING,
                    "key": {"type": "string", "description": "The customer id: the envelope's `subject`. " + KEY_RULE},
                }
            },
        }
        data = _example(schemas[component], schemas)
        if isinstance(data, dict) and _valid(schemas[component], data, schemas):
            # Only where the registered schema yields one simply (its `examples`, else its required fields).
            messages[msg_id]["examples"] = [
                {
                    "name": "structured",
                    "summary": f"A {name} event",
                    "payload": {
                        "specversion": "1.0",
                        "id": f"evt-{name}-1",
                        "source": EXAMPLE_PARTNER,
                        "type": name,
                        "subject": EXAMPLE_SUBJECT,
                        "time": EXAMPLE_TIME,
                        "dataschema": t["dataschema"],
                        "data": data,
                    },
                }
            ]
        added.append(msg_id)
    channel_id = topics.PARTNER_EVENTS.replace(".", "-")
    for channel, operation in ((channel_id, f"receive-{channel_id}"), ("partner-events-own", "receive-partner-events-own")):
        for msg_id in added:
            doc["channels"][channel]["messages"][msg_id] = {"$ref": f"#/components/messages/{msg_id}"}
            doc["operations"][operation]["messages"].append({"$ref": f"#/channels/{channel}/messages/{msg_id}"})
    return doc


def _valid(schema: dict[str, Any], instance: Any, schemas: dict[str, Any]) -> bool:
    try:
        return jsonschema_rs.Draft202012Validator(
            {"components": {"schemas": schemas}, "allOf": [schema]}, validate_formats=True
        ).is_valid(instance)
    except (ValueError, jsonschema_rs.ValidationError):
        return False  # a schema this validator cannot compile: no example rather than a failed document


def _reroot(node: Any, root: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (root + v[1:] if k in ("$ref", "$dynamicRef") and isinstance(v, str) and v.startswith("#") else _reroot(v, root))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_reroot(v, root) for v in node]
    return node
