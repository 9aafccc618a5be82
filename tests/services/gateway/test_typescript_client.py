"""The TypeScript client (clients/typescript), generated from the served document, type-checked and run against a
running system: the gateway in front of the four services on real Postgres.

Node 20 and npm are on every machine the suite runs on; `npm ci` is run here when `node_modules` is missing.
Without node the test is skipped on a workstation and FAILS in CI (`CI=true`), so CI cannot pass by not
running it.
"""

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from deploy.openapi import merged_document
from tests.services.gateway.conftest import Stack, create_key, gateway_stack

PACKAGE = Path(__file__).resolve().parents[3] / "clients" / "typescript"
COMMITTED_TYPES = PACKAGE / "src" / "schema.d.ts"


def node_or_fail() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are required in CI to check the TypeScript client")
        pytest.skip("node/npm not installed: the TypeScript client is not checked")
    return node


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=PACKAGE, capture_output=True, text=True, timeout=timeout, env=os.environ | (env or {}))
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def npm_ci() -> None:
    if not (PACKAGE / "node_modules" / ".package-lock.json").exists():
        run("npm", "ci", "--no-audit", "--no-fund")


async def served_document(stack: Stack) -> dict:
    """The merged document once every service's part is in it (the gateway fetches them in the background)."""
    async with stack.client(key=None) as client:
        for _ in range(200):
            doc = (await client.get("/openapi.json")).json()
            if "x-missing-services" not in doc["info"]:
                return doc
            await asyncio.sleep(0.1)
    raise AssertionError(f"the gateway never merged {doc['info']['x-missing-services']}")


async def test_generated_client_typechecks_and_runs_against_the_system(database_url: str, tmp_path: Path) -> None:
    node = node_or_fail()
    await asyncio.to_thread(npm_ci)
    async with gateway_stack(database_url) as stack:
        served = await served_document(stack)
        (tmp_path / "openapi.json").write_text(json.dumps(served))
        # The offline dump (`python -m deploy.openapi`, the generator's default source) is what a gateway serves.
        assert json.loads(json.dumps(merged_document())) == served
        generated = tmp_path / "schema.d.ts"
        await asyncio.to_thread(
            run, node, "scripts/generate.mjs", "--file", str(tmp_path / "openapi.json"), "--out", str(generated)
        )
        # The committed types are the served document's: a change to any route shows in the diff of a PR.
        assert generated.read_text() == COMMITTED_TYPES.read_text(), (
            "clients/typescript/src/schema.d.ts is out of date: run `npm run generate` in clients/typescript"
        )
        await asyncio.to_thread(run, node, "node_modules/typescript/bin/tsc", "--noEmit", "-p", ".")
        out_dir = PACKAGE / "dist"
        await asyncio.to_thread(run, node, "node_modules/typescript/bin/tsc", "-p", ".", "--outDir", str(out_dir))

        key = await create_key(stack, "admin")
        source = f"shop-ts-{uuid.uuid4().hex[:8]}"
        out = await asyncio.to_thread(
            run,
            node,
            str(out_dir / "examples" / "smoke.js"),
            env={"CRM_URL": stack.gateway_url, "CRM_KEY": key, "CRM_SOURCE": source},
            timeout=120,
        )
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["accepted"] == 3
    assert seen["problemType"] == "https://customer-value-crm.dev/problems/events-rejected"
    assert len(seen["reasons"]) == 1 and "amount" in seen["reasons"][0]
    # Three customers, two per page: two pages followed by `next_cursor`, each customer once.
    assert seen["pages"] == 2 and len(seen["ids"]) == len(set(seen["ids"])) == 3
    view = seen["view"]
    assert view["customer_id"] == view["profile_customer_id"] and view["customer_id"] in seen["ids"]
    assert view["purchase_count"] == 1 and [(Decimal(t.split()[0]), t.split()[1]) for t in view["totals"]] == [
        (Decimal("59.90"), "EUR")
    ]
    assert set(view["sources"]) == {"profile", "segmentation", "value", "lifecycle"}
    assert seen["missing"] == {"status": 404, "type": "https://customer-value-crm.dev/problems/not-found"}


def test_without_node_ci_fails_and_a_workstation_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        node_or_fail()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        node_or_fail()
