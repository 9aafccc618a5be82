"""Rules of custom event types: what schema may be registered, and checking an event against its version.

Versioning: a new version of a type is a new row and old versions stay. An event names the version it was
written for in `dataschema` (`urn:crm:schema:<type>:v<N>`, what the AsyncAPI document gives for each version)
and is checked against that one; without `dataschema` it is checked against the newest. A `dataschema` naming
another type or an unknown version is refused with the known versions listed.

Types are global (an admin registers them, every partner may send them); the events stay the sending
partner's (`source`), like every event.
"""

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import Envelope, InvalidEvent
from shared.contracts.partner import PARTNER_EVENT_TYPES
from shared.problems import DomainError

from interaction.event_types import repository
from interaction.event_types.schemas import EventTypeCreate, EventTypeRead

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
DIALECT = "https://json-schema.org/draft/2020-12/schema"


class InvalidSchema(DomainError):
    status, slug, title = 422, "invalid-event-schema", "The event type's schema cannot be registered"


class FixedEventType(DomainError):
    status, slug, title = 409, "fixed-event-type", "The name is one of the fixed event types"


def dataschema(name: str, version: int) -> str:
    return f"urn:crm:schema:{name}:v{version}"


def read(row: Any) -> EventTypeRead:
    return EventTypeRead(
        name=row.name,
        version=row.version,
        dataschema=dataschema(row.name, row.version),
        json_schema=row.json_schema,
        description=row.description,
        created_at=row.created_at,
    )


async def register(session: AsyncSession, body: EventTypeCreate) -> EventTypeRead:
    """Store the schema as the type's next version (the first registers the type)."""
    if body.name in PARTNER_EVENT_TYPES:
        raise FixedEventType(f"{body.name!r} is a fixed event type; its schema is the contract's")
    encoded = check_schema(body.json_schema)
    return read(await repository.add_version(session, body.name, encoded, body.description))


def check_schema(schema: dict[str, Any]) -> str:
    """The schema as stored, or `InvalidSchema` saying why not (too big, too deep, not 2020-12, remote refs)."""
    try:
        encoded = orjson.dumps(schema)
    except orjson.JSONEncodeError as exc:  # nested past orjson's limit, or a huge integer
        raise InvalidSchema(f"schema cannot be stored: {exc}") from None
    if len(encoded) > MAX_SCHEMA_BYTES:
        raise InvalidSchema(f"schema is {len(encoded)} bytes, over the {MAX_SCHEMA_BYTES}-byte limit")
    if (depth := _depth(schema)) > MAX_SCHEMA_DEPTH:
        raise InvalidSchema(f"schema is {depth} levels deep, over the limit of {MAX_SCHEMA_DEPTH}")
    if schema.get("$schema", DIALECT) != DIALECT:
        raise InvalidSchema(f"$schema: only {DIALECT} (draft 2020-12) is supported")
    if schema.get("type") != "object":
        raise InvalidSchema('schema: an event\'s data is an object; the schema needs "type": "object"')
    try:
        Draft202012Validator.check_schema(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise InvalidSchema(f"not a valid JSON Schema at {where}: {exc.message[:300]}") from None
    for keyword, value in _keywords(schema):
        if keyword == "$id" or keyword == "$anchor" or keyword == "$dynamicAnchor":
            raise InvalidSchema(f"{keyword}: not supported; refer to parts of the schema as '#/$defs/…'")
        if keyword in ("$ref", "$dynamicRef") and not _resolves(schema, value):
            raise InvalidSchema(
                f"{keyword} {str(value)[:100]!r}: only references into this schema ('#/…' naming an existing part) are allowed"
            )
    return encoded.decode()


def _depth(doc: Any) -> int:
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_SCHEMA_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _keywords(doc: Any):
    """Every (key, value) of every object in the schema (keys of `properties` included: harmless extra hits)."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                yield k, v
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)


def _resolves(schema: dict[str, Any], ref: object) -> bool:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return False
    node: Any = schema
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return ref == "#" or ref.startswith("#/")


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    # Keyed by the schema itself: rows never change, and a recreated database may reuse (name, version).
    return Draft202012Validator(orjson.loads(schema_json), format_checker=Draft202012Validator.FORMAT_CHECKER)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The registered types one batch needs: every known name, and the versions of the batch's types."""

    names: list[str]
    versions: dict[str, dict[int, str]]  # name -> version -> schema (JSON text)

    def __contains__(self, name: str) -> bool:
        return name in self.versions

    def check(self, envelope: Envelope) -> int:
        """The version the event's data satisfies, or `InvalidEvent` naming what does not."""
        versions = self.versions[envelope.type]
        version = self._version(envelope, versions)
        errors = list(itertools.islice(_validator(versions[version]).iter_errors(envelope.data), 5))
        if errors:
            described = "; ".join(f"data{''.join(f'.{p}' for p in e.absolute_path)}: {e.message[:200]}" for e in errors)
            raise InvalidEvent(f"{envelope.type} v{version}: {described}")
        return version

    @staticmethod
    def _version(envelope: Envelope, versions: dict[int, str]) -> int:
        if envelope.dataschema is None:
            return max(versions)
        match = re.fullmatch(rf"urn:crm:schema:{re.escape(envelope.type)}:v(\d{{1,9}})", envelope.dataschema)
        known = ", ".join(dataschema(envelope.type, v) for v in sorted(versions))
        if match is None or int(match[1]) not in versions:
            raise InvalidEvent(
                f"dataschema {envelope.dataschema[:200]!r} is not a version of {envelope.type}; "
                f"known: {known} (or omit it for the newest)"
            )
        return int(match[1])


async def catalogue(session: AsyncSession, names: set[str]) -> Catalogue:
    versions: dict[str, dict[int, str]] = {}
    for row in await repository.versions_of(session, sorted(names)):
        versions.setdefault(row.name, {})[row.version] = orjson.dumps(row.json_schema).decode()
    return Catalogue(await repository.names(session), versions)


async def list_types(session: AsyncSession) -> list[EventTypeRead]:
    return [read(r) for r in await repository.all_versions(session)]
