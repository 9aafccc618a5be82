"""docker-compose.yml, checked without a Docker engine.

The compose tool validates the file; then its own commands and environments run as local processes against
the test servers (hostnames swapped for theirs), so a wrong command, a missing variable, a migration job
that does not migrate or a healthcheck that cannot pass fails here rather than on `docker compose up`.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from sqlalchemy import make_url

from deploy.local.kafka import PARTNER_SECURITY
from deploy.local.ports import free_port
from tests.e2e.processes import (
    GATEWAY_ADMIN_KEY,
    REPO,
    ServiceProcess,
    drive_one_order,
    process_env,
    run_to_completion,
    running,
)
from tests.infra import Databases

COMPOSE_FILE = REPO / "docker-compose.yml"
APP_SERVICES = ["interaction", "segmentation", "clv", "lifecycle"]
COMPOSE_PORT = 8000


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) if present, else the standalone `docker-compose` (1.29 needs no engine)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def operator_env() -> dict[str, str]:
    """What the operator's environment (or `.env`) supplies: the secrets compose requires."""
    return {
        "POSTGRES_PASSWORD": "not-used-the-test-database-url-wins",
        "INTERNAL_TOKEN_PUBLIC_KEY": os.environ["INTERNAL_TOKEN_PUBLIC_KEY"],
        "INTERNAL_TOKEN_PRIVATE_KEY": os.environ["INTERNAL_TOKEN_PRIVATE_KEY"],
        "GATEWAY_BOOTSTRAP_ADMIN_KEY": GATEWAY_ADMIN_KEY,
    }


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}`, from `env`."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose would refuse to start: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def load_compose() -> dict:
    """The services with anchors and `<<` merges resolved, as compose sees them."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def test_compose_config_is_valid() -> None:
    """The compose tool accepts the file (schema, anchors, depends_on conditions)."""
    cli = compose_command()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (CI apt-installs docker-compose)")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG")}
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env | operator_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Without the secrets compose refuses to start, naming the one to set (no weak built-in defaults).
    refused = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=REPO, capture_output=True, text=True, timeout=60, env=env
    )
    assert refused.returncode != 0 and "set " in refused.stderr, refused.stderr


def test_compose_wiring() -> None:
    """Only the gateway and Kafka's partner listener are published; each service waits for its own migration
    job and the servers."""
    services = load_compose()
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway", "kafka"}
    assert services["gateway"]["ports"] == [f"{COMPOSE_PORT}:{COMPOSE_PORT}"]
    assert services["kafka"]["ports"] == ["9094:9094"]
    for name in APP_SERVICES:
        assert services[f"{name}-migrate"]["restart"] == "no"
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "kafka": {"condition": "service_healthy"},
            f"{name}-migrate": {"condition": "service_completed_successfully"},
        }
    assert set(services["gateway"]["depends_on"]) == {*APP_SERVICES, "gateway-migrate"}
    assert services["gateway-migrate"]["restart"] == "no"


def kafka_properties(service: dict) -> dict[str, str]:
    """The server.properties the apache/kafka image makes of `KAFKA_*` variables ('.'→'_', '_'→'__', '-'→'___')."""
    props = {}
    for key, value in service["environment"].items():
        if key.startswith("KAFKA_"):
            name = key.removeprefix("KAFKA_").lower().replace("___", "\0").replace("__", "\1").replace("_", ".")
            props[name.replace("\0", "-").replace("\1", "_")] = str(value)
    return props


def test_compose_kafka_authenticates_partners_as_the_test_broker_does() -> None:
    """Security class 3: the published listener is SASL SCRAM with ACLs, configured as the test broker whose
    behaviour tests/integration/test_partner_kafka_auth.py proves; the services' listener is not published."""
    props = kafka_properties(load_compose()["kafka"])
    assert {k: props.get(k) for k in PARTNER_SECURITY} == PARTNER_SECURITY
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    listeners = {url.split("://")[0]: url.rsplit(":", 1)[1] for url in props["listeners"].split(",")}
    assert protocols["PARTNER"] == "SASL_PLAINTEXT" and listeners["PARTNER"] == "9094"
    assert "9092" not in str(load_compose()["kafka"]["ports"]), "the services' anonymous listener stays internal"


def test_compose_secrets_come_from_the_operator() -> None:
    """Every service verifies the gateway's tokens, only the gateway can sign, and Postgres has a real password."""
    services = load_compose()
    for name in [*APP_SERVICES, "gateway"]:
        env = services[name]["environment"]
        assert env["INTERNAL_TOKEN_PUBLIC_KEY"].startswith("${INTERNAL_TOKEN_PUBLIC_KEY:?"), name
        assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"], name
    assert [n for n, svc in services.items() if "INTERNAL_TOKEN_PRIVATE_KEY" in svc.get("environment", {})] == ["gateway"]
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "--auth-local=scram-sha-256" in postgres["POSTGRES_INITDB_ARGS"]


class LocalCompose:
    """Rewrites compose commands and environments for processes on this machine."""

    def __init__(self, database_url: str, kafka_bootstrap: str, topic_prefix: str) -> None:
        self.database = make_url(database_url)
        self.kafka_bootstrap = kafka_bootstrap
        self.topic_prefix = topic_prefix
        self.ports = {name: free_port() for name in [*APP_SERVICES, "gateway"]}

    def value(self, value: object) -> str:
        value = interpolate(str(value), operator_env())
        if value.startswith("postgresql"):
            url = make_url(value)
            assert url.host == "postgres" and url.port == 5432, value
            db = self.database
            return url.set(
                host=db.host, port=db.port, database=db.database, username=db.username, password=db.password
            ).render_as_string(hide_password=False)
        value = value.replace("kafka:9092", self.kafka_bootstrap)
        for name, port in self.ports.items():
            value = value.replace(f"http://{name}:{COMPOSE_PORT}", f"http://127.0.0.1:{port}")
        return value

    def env(self, service: dict) -> dict[str, str]:
        env = {key: self.value(val) for key, val in service.get("environment", {}).items()}
        # Only compose's environment: not the test session's keypair that process_env would add.
        base = {k: v for k, v in process_env({}).items() if not k.startswith("INTERNAL_TOKEN_")}
        return {**base, **env, "TOPIC_PREFIX": self.topic_prefix}

    @staticmethod
    def argv(command: str) -> list[str]:
        argv = shlex.split(command)
        assert argv[0] == "python", command
        return [sys.executable, *argv[1:]]

    def serve_argv(self, name: str, command: str) -> list[str]:
        argv = self.argv(command)
        port_at = argv.index("--port") + 1
        assert argv[port_at] == str(COMPOSE_PORT), command
        argv[port_at] = str(self.ports[name])
        return [*argv, "--host", "127.0.0.1"]

    def healthcheck_argv(self, name: str, test: list[str]) -> list[str]:
        assert test[:2] == ["CMD", "python"], test
        return [sys.executable, *(arg.replace(f":{COMPOSE_PORT}/", f":{self.ports[name]}/") for arg in test[2:])]


@pytest.mark.slow
@pytest.mark.kafka
async def test_compose_services_run_as_local_processes(
    databases: Databases, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Compose's own commands and env: the migrate jobs build an empty database, then one order flows through."""
    services = load_compose()
    database_url = await databases.create(migrated=False)
    local = LocalCompose(database_url, kafka_bootstrap, topic_prefix)

    def migrate(name: str) -> subprocess.CompletedProcess:
        job = services[f"{name}-migrate"]
        return run_to_completion(f"{name}-migrate", local.argv(job["command"]), local.env(job), tmp_path)

    migrated = [*APP_SERVICES, "gateway"]
    with ThreadPoolExecutor(len(migrated)) as pool:  # compose starts the jobs together, too
        for name, result in zip(migrated, pool.map(migrate, migrated), strict=True):
            assert result.returncode == 0, f"{name}-migrate failed:\n{result.stdout}{result.stderr}"

    processes = [
        ServiceProcess(
            name, local.serve_argv(name, services[name]["command"]), local.env(services[name]), local.ports[name], tmp_path
        )
        for name in [*APP_SERVICES, "gateway"]
    ]
    with running(processes) as procs:
        for name in procs:
            check = subprocess.run(
                local.healthcheck_argv(name, services[name]["healthcheck"]["test"]), capture_output=True, text=True, timeout=30
            )
            assert check.returncode == 0, f"{name}'s compose healthcheck failed: {check.stderr}"
        await drive_one_order(procs["gateway"].url, database_url)


def test_one_image_built_once_and_every_server_restarts() -> None:
    """The app image is built by one service and used by all the others (not rebuilt per service); the
    long-running servers, Kafka and Postgres included, come back after a crash or a host reboot."""
    services = load_compose()
    app = [name for name, spec in services.items() if spec.get("image") == "customer-value-crm:local"]
    builders = [name for name, spec in services.items() if "build" in spec]
    assert builders == ["interaction-migrate"], builders
    assert len(app) == 10, app
    assert all(services[name].get("pull_policy") == "never" for name in app if name not in builders)
    long_running = [name for name, spec in services.items() if not name.endswith("-migrate")]
    assert {"kafka", "postgres", "gateway", *APP_SERVICES} <= set(long_running)
    assert all(services[name].get("restart") == "unless-stopped" for name in long_running), {
        name: services[name].get("restart") for name in long_running
    }
