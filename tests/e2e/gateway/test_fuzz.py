"""R6: schemathesis fuzzes the merged OpenAPI document through the gateway with each role's key.

The four services and the gateway run as OS processes; the schema is the one the gateway serves, so every
route any service adds is fuzzed without editing this test. No response may be a 5xx, carry an undocumented
status or content type, or violate its documented schema. `CRM_FUZZ_EXAMPLES` sets examples per operation.
"""

import asyncio
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from tests.e2e.processes import (GATEWAY_ADMIN_KEY, ServiceProcess, free_port, process_env, running, serve_argv)
from tests.infra import Databases

pytestmark = [pytest.mark.slow, pytest.mark.kafka]
SERVICES = ["interaction", "segmentation", "clv", "lifecycle"]
ROLES = ["admin", "frontend", "analyst", "partner"]
EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "6"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_stack(databases: Databases, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[str, dict[str, str]]]:
    """The stack as processes, and one API key per role: (gateway URL, role → key)."""
    database_url = asyncio.run(databases.create())
    log_dir = tmp_path_factory.mktemp("fuzz")
    shared = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
              "TOPIC_PREFIX": f"fuzz{uuid.uuid4().hex[:8]}.", "TRANSPORT": "kafka", "LOG_JSON": "false"}
    ports = {name: free_port() for name in [*SERVICES, "gateway"]}
    gateway_env = shared | {f"GATEWAY_{n.upper()}_URL": f"http://127.0.0.1:{ports[n]}" for n in SERVICES} | {
        "GATEWAY_BOOTSTRAP_ADMIN_KEY": GATEWAY_ADMIN_KEY, "GATEWAY_RATE_LIMIT_PER_S": "100000",
        "GATEWAY_RATE_LIMIT_BURST": "100000", "GATEWAY_LOG_JSON": "false",
        # An API-only gateway: fuzzed webhook subscriptions point at made-up hosts; nothing is delivered to them.
        "GATEWAY_RUN_WORKERS": "false"}
    processes = [ServiceProcess(n, serve_argv(n, ports[n]), process_env(shared), ports[n], log_dir) for n in SERVICES]
    processes.append(ServiceProcess("gateway", serve_argv("gateway", ports["gateway"]), process_env(gateway_env),
                                    ports["gateway"], log_dir))
    with running(processes) as procs:
        url = procs["gateway"].url
        keys = {}
        with httpx.Client(base_url=url, headers={"X-API-Key": GATEWAY_ADMIN_KEY}, timeout=30) as admin:
            for role in ROLES:
                resp = admin.post("/v1/api-keys", json={"name": f"fuzz {role}", "role": role,
                                                        "partner_id": "shop-eu" if role == "partner" else None})
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
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate])
            def fuzz(case) -> None:
                case.call_and_validate(base_url=url, headers={"X-API-Key": keys[role]}, checks=CHECKS, timeout=30)

            try:
                fuzz()
            except Unsatisfiable:
                continue  # nothing to negate (no parameters, no body)
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, report them together
                failures.append(f"{role} {operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
