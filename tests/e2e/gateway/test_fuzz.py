"""R6: schemathesis fuzzes the merged OpenAPI document through the gateway with each role's key.

The four services and the gateway run as OS processes; the schema is the one the gateway serves, so every
route any service adds is fuzzed without editing this test. No response may be a 5xx, carry an undocumented
status or content type, or violate its documented schema. `CRM_FUZZ_EXAMPLES` sets examples per operation.

Then every write route (POST, PUT, PATCH) gets schema-valid bodies with one value swapped for a hostile one
(lone surrogates, NUL, numbers beyond any column, instants that overflow in UTC, deep nesting), written as JSON
text, since a JSON encoder refuses most of them: each answer must be a 4xx problem document or a success,
never a 5xx (`CRM_FUZZ_HOSTILE_EXAMPLES` per route).
"""

import asyncio
import json
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from deploy.local.ports import free_port
from tests.e2e.processes import GATEWAY_ADMIN_KEY, ServiceProcess, process_env, running, serve_argv
from tests.infra import Databases

pytestmark = [pytest.mark.slow, pytest.mark.kafka]
SERVICES = ["interaction", "segmentation", "clv", "lifecycle"]
ROLES = ["admin", "frontend", "analyst", "partner"]
EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "6"))
HOSTILE_EXAMPLES = int(os.environ.get("CRM_FUZZ_HOSTILE_EXAMPLES", "10"))
FRAMING_HEADERS = {"transfer-encoding", "content-length", "connection", "host", "te", "trailer", "upgrade"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_stack(
    databases: Databases, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """The stack as processes, and one API key per role: (gateway URL, role → key)."""
    database_url = asyncio.run(databases.create())
    log_dir = tmp_path_factory.mktemp("fuzz")
    shared = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TOPIC_PREFIX": f"fuzz{uuid.uuid4().hex[:8]}.",
        "TRANSPORT": "kafka",
        "LOG_JSON": "false",
    }
    ports = {name: free_port() for name in [*SERVICES, "gateway"]}
    gateway_env = (
        shared
        | {f"GATEWAY_{n.upper()}_URL": f"http://127.0.0.1:{ports[n]}" for n in SERVICES}
        | {
            "GATEWAY_BOOTSTRAP_ADMIN_KEY": GATEWAY_ADMIN_KEY,
            "GATEWAY_RATE_LIMIT_PER_S": "100000",
            "GATEWAY_RATE_LIMIT_BURST": "100000",
            "GATEWAY_LOG_JSON": "false",
            # An API-only gateway: fuzzed webhook subscriptions point at made-up hosts; nothing is delivered to them.
            "GATEWAY_RUN_WORKERS": "false",
        }
    )
    processes = [ServiceProcess(n, serve_argv(n, ports[n]), process_env(shared), ports[n], log_dir) for n in SERVICES]
    processes.append(
        ServiceProcess("gateway", serve_argv("gateway", ports["gateway"]), process_env(gateway_env), ports["gateway"], log_dir)
    )
    with running(processes) as procs:
        url = procs["gateway"].url
        keys = {}
        with httpx.Client(base_url=url, headers={"X-API-Key": GATEWAY_ADMIN_KEY}, timeout=30) as admin:
            for role in ROLES:
                resp = admin.post(
                    "/v1/api-keys",
                    json={"name": f"fuzz {role}", "role": role, "partner_id": "shop-eu" if role == "partner" else None},
                )
                assert resp.status_code == 201, resp.text
                keys[role] = resp.json()["key"]
            # Wait until every service's document is merged in (the gateway fetches them in the background).
            for _ in range(100):
                if "x-missing-services" not in admin.get("/openapi.json").json()["info"]:
                    break
                asyncio.run(asyncio.sleep(0.2))
        yield url, keys


@pytest.mark.parametrize("role", ROLES)
def test_merged_openapi_holds_for_every_role(fuzz_stack: tuple[str, dict[str, str]], role: str) -> None:
    url, keys = fuzz_stack
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def fuzz(case) -> None:
                # Message framing is the HTTP server's, answered before any of our code (a garbage
                # transfer-encoding gets uvicorn's text/plain 400): not a case of the documented API.
                for name in [h for h in (case.headers or {}) if h.lower() in FRAMING_HEADERS]:
                    del case.headers[name]
                case.call_and_validate(base_url=url, headers={"X-API-Key": keys[role]}, checks=CHECKS, timeout=30)

            try:
                fuzz()
            except Unsatisfiable:
                continue  # nothing to negate (no parameters, no body)
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, report them together
                failures.append(f"{role} {operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


# Raw JSON text: what a partner or a hand-written client can send, not what a JSON encoder would produce.
HOSTILE = [
    '"\\ud800"',
    '"a\\u0000b"',
    '"' + "x" * 100_000 + '"',
    '"9999-12-31T23:59:59-14:00"',
    '"0001-01-01T00:00:00+14:00"',
    '"1e-999999"',
    "1e-999999",
    "1e999999",
    str(2**64),
    "[" * 254 + "]" * 254,
    '{"\\ud800": 1, "k\\u0000": "v"}',
]
# Drawn at random against generated bodies, with the sweep's values.
MORE_HOSTILE = [
    *HOSTILE,
    '"tail \\udfff"',
    '"\\udc00\\ud800"',
    '"\\u0000"',
    '"1e999999"',
    '"NaN"',
    "-1e999999",
    "-0",
    "-0.0",
    "1" + "0" * 30,
    "-" + str(2**63 + 1),
    "1e-400",
    '{"a": ' * 100 + "1" + "}" * 100,
    '["\\ud800", 1e999999]',
]
SLOT = "__hostile_value_slot__"


def _locations(doc: Any, loc: tuple = ()) -> list[tuple]:
    """Every place a value sits in a JSON document, the root first."""
    found = [loc]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _locations(value, (*loc, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _locations(value, (*loc, i))
    return found


def _with_hostile(doc: Any, loc: tuple, token: str) -> bytes:
    if not loc:
        return token.encode()
    copy = json.loads(json.dumps(doc))
    parent = copy
    for part in loc[:-1]:
        parent = parent[part]
    parent[loc[-1]] = SLOT
    return json.dumps(copy).replace(json.dumps(SLOT), token, 1).encode()


def _draw(strategy, n: int) -> list:
    drawn = []

    @given(case=strategy)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def collect(case) -> None:
        drawn.append(case)

    collect()
    return drawn


def test_write_routes_answer_hostile_values_with_a_problem(fuzz_stack: tuple[str, dict[str, str]]) -> None:
    """Each write route's example body with every value in turn swapped for each hostile one (the example gets
    past the other checks, a known pipeline say, so the value reaches the database), then generated bodies with
    one value swapped at random."""
    url, keys = fuzz_stack
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    writes = [
        op for op in (r.ok() for r in api.get_all_operations()) if op.method.upper() in ("POST", "PUT", "PATCH") and op.body
    ]
    assert len(writes) >= 20
    failures: list[str] = []
    sent = 0
    rng = random.Random(6)
    with httpx.Client(base_url=url, timeout=30) as client:
        for operation in writes:
            # Only the partner key may publish events; the admin key reaches every other route.
            key = keys["partner" if operation.path == "/v1/events" else "admin"]
            examples = [c for strategy in api.get_strategies_from_examples(operation) for c in _draw(strategy, 1)]
            generated = _draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE), HOSTILE_EXAMPLES)
            sends = [(c, loc, token) for c in examples[:1] for loc in _locations(c.body)[1:] or [()] for token in HOSTILE]
            sends += [(c, rng.choice(_locations(c.body)[1:] or [()]), rng.choice(MORE_HOSTILE)) for c in generated]
            sent += len(sends)
            for case, loc, token in sends:
                body = _with_hostile(case.body, loc, token)
                try:
                    resp = client.request(
                        case.method,
                        case.formatted_path,
                        params=case.query or None,
                        content=body,
                        headers={"X-API-Key": key, "content-type": case.media_type or "application/json"},
                    )
                except httpx.TransportError as exc:
                    failures.append(f"{operation.label} {exc!r} for {body[:300]!r}")
                    continue
                problem = resp.headers.get("content-type", "").startswith("application/problem+json")
                if resp.status_code >= 500 or (resp.status_code >= 400 and not problem):
                    failures.append(f"{operation.label} {resp.status_code} for {body[:300]!r}: {resp.text[:300]}")
    assert sent >= len(writes) * len(HOSTILE), "every write route's example gets every hostile value"
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:30])
