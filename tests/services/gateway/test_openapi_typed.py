"""Every answer of every route is typed in the merged OpenAPI document, problems included.

A client generated from the document (clients/typescript) is only as good as its schemas: a response without one
is `unknown` there, an object without properties is `Record<string, unknown>`. The walk follows every `$ref`
reachable from a response, so a model nested deep in an answer counts too.
"""

from typing import Any

import pytest

from deploy.openapi import merged_document
from shared.problems import PROBLEM_JSON, PROBLEM_TYPE_BASE

# Schemas whose content is free-form by design, each with the reason. A path is the component's name, then the
# keys down to the object (`items` for an array's items, `anyOf/0` for a union's branch).
FREE_FORM = {
    "EventTypeRead/properties/schema": "a JSON Schema document the admin registered, any valid JSON Schema",
    "TimelineEntryRead/properties/data": "the event's `data`, shaped by its type: the AsyncAPI document types each one",
    "CustomerExport/properties/purchases/items": "the R15 export: the stored rows as they are, every column",
    "CustomerExport/properties/adjustments/items": "the R15 export: the stored rows as they are, every column",
    "CustomerExport/properties/deals/items": "the R15 export: lifecycle's rows as they are, every column",
    "CustomerExport/properties/merges/items": "the R15 export: the stored rows as they are, every column",
    "SegmentRead/properties/definition/anyOf/0": "a rule tree or a scheme, per segment kind (docs/segmentation.md)",
    "SegmentVersion/properties/definition": "a rule tree or a scheme, per segment kind (docs/segmentation.md)",
    "SegmentRead/properties/summary/anyOf/0": "the figures of the run that made the segment, per run kind",
    "RunRead/properties/params": "the parameters of the run, per run kind (docs/segmentation.md)",
    "RunRead/properties/result/anyOf/0": "the result of the run, per run kind (docs/segmentation.md)",
}
COMPOSITES = ("$ref", "allOf", "anyOf", "oneOf", "enum", "const", "not")


def untyped(document: dict) -> list[str]:
    """Where an answer has no schema, or reaches an object (or `{}`) that says nothing of its content."""
    schemas = document["components"]["schemas"]
    found: list[str] = []
    seen: set[str] = set()

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/components/schemas/")
            if name not in seen:
                seen.add(name)
                assert name in schemas, f"{where}: dangling reference {node['$ref']}"
                walk(schemas[name], name)
            return
        if not any(k in node for k in (*COMPOSITES, "type")):
            found.append(f"{where}: empty schema")
        extra = node.get("additionalProperties")
        is_object = node.get("type") == "object" or (isinstance(node.get("type"), list) and "object" in node["type"])
        if is_object and not node.get("properties") and extra in (None, True, {}) and where not in FREE_FORM:
            found.append(f"{where}: an object without properties")
        for key in ("allOf", "anyOf", "oneOf"):
            for i, branch in enumerate(node.get(key, [])):
                walk(branch, f"{where}/{key}/{i}")
        for name, prop in node.get("properties", {}).items():
            walk(prop, f"{where}/properties/{name}")
        if isinstance(extra, dict):
            walk(extra, f"{where}/additionalProperties")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{where}/items")

    for path, item in document["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            for status, response in op["responses"].items():
                content = response.get("content")
                if not content:
                    if status not in ("204", "304"):
                        found.append(f"{method.upper()} {path} {status}: no body documented")
                    continue
                for media_type, media in content.items():
                    if not media.get("schema"):
                        found.append(f"{method.upper()} {path} {status} {media_type}: no schema")
                    else:
                        walk(media["schema"], f"{method.upper()} {path} {status}")
    return found


@pytest.fixture(scope="module")
def document() -> dict:
    return merged_document()


def test_every_answer_is_typed(document: dict) -> None:
    assert untyped(document) == []


def test_the_walk_finds_an_untyped_answer(document: dict) -> None:
    # The check above cannot pass by walking nothing: an untyped part, a schemaless answer are both found.
    op = document["paths"]["/v1/customers/{customer_id}"]["get"]
    doc = document | {
        "paths": {
            "/v1/x": {
                "get": {"responses": {"200": op["responses"]["200"], "404": {"description": "x", "content": {PROBLEM_JSON: {}}}}}
            }
        },
        "components": {"schemas": document["components"]["schemas"] | {"CustomerProfileRead": {"type": "object"}}},
    }
    assert untyped(doc) == [
        "CustomerProfileRead: an object without properties",
        "GET /v1/x 404 application/problem+json: no schema",
    ]


def test_problems_list_their_types_and_members(document: dict) -> None:
    def problem(path: str, method: str, status: str) -> dict:
        schema = document["paths"][path][method]["responses"][status]["content"][PROBLEM_JSON]["schema"]
        assert schema["allOf"][0] == {"$ref": "#/components/schemas/Problem"}
        assert set(document["paths"][path][method]["responses"][status]["content"]) == {PROBLEM_JSON}
        return schema["allOf"][1]

    def types(part: dict) -> set[str]:
        return {t.removeprefix(PROBLEM_TYPE_BASE) for t in part["properties"]["type"]["enum"]}

    rejected = problem("/v1/events", "post", "422")
    assert types(rejected) == {"events-rejected", "validation", "unstorable-value"}
    assert rejected["properties"]["results"]["items"] == {"$ref": "#/components/schemas/IngestItemResult"}
    foreign = problem("/v1/events", "post", "403")
    assert types(foreign) == {"forbidden", "foreign-source"}
    assert foreign["properties"]["items"]["items"] == {"$ref": "#/components/schemas/ForeignItem"}
    # Every route's statuses, the gateway's own included; errors sharing a status are listed together.
    view = document["paths"]["/v1/customers/{customer_id}"]["get"]["responses"]
    assert {"400", "401", "403", "404", "422", "429", "503"} <= set(view)
    assert types(problem("/v1/customers/{customer_id}", "get", "503")) == {"service-unavailable"}
    assert problem("/v1/customers/{customer_id}", "get", "503")["required"] == ["type", "service"]
    assert types(problem("/v1/segments/{segment_id}", "patch", "409")) == {"not-a-rule-segment", "segment-archived"}
    assert types(problem("/v1/segments/{segment_id}", "patch", "422")) == {"invalid-definition", "validation", "unstorable-value"}
    validation = problem("/v1/api-keys", "post", "422")
    assert validation["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ValidationErrorItem"}
    # FastAPI's own JSON validation error is gone: what is documented is what is answered.
    assert "HTTPValidationError" not in document["components"]["schemas"]
