import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.kafka import KafkaBroker, ensure_jars
from deploy.local.postgres import PostgresServer
from shared.internal_auth import generate_keypair
from tests.infra import Databases

# One gateway keypair for the session, as a deployment would set it: the gateways the tests start sign with
# the private key, every service verifies with the public one (settings read both from the environment).
if not os.environ.get("INTERNAL_TOKEN_PRIVATE_KEY"):
    os.environ["INTERNAL_TOKEN_PRIVATE_KEY"], os.environ["INTERNAL_TOKEN_PUBLIC_KEY"] = generate_keypair()


def pytest_configure(config: pytest.Config) -> None:
    # A cancelled run (CI, `timeout`) gets SIGTERM: treat it like Ctrl-C so the session fixtures still stop
    # the Kafka and Postgres servers they started instead of leaving them running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@pytest.fixture(scope="session")
def infra_dir() -> Iterator[Path]:
    """Where the servers this session starts keep their data.

    Not under pytest's basetemp: any pytest session starting on the machine resets that tree to mode 0700,
    which locks out the unprivileged account the Postgres server runs as (when the suite runs as root).
    """
    path = Path(tempfile.mkdtemp(prefix="crm-test-infra-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(infra_dir: Path) -> Iterator[str]:
    """A real PostgreSQL server: `DATABASE_URL`'s, or one started for this session."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    server = PostgresServer(infra_dir / "postgres")
    server.start()
    try:
        yield server.async_url("postgres")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def databases(postgres_url: str) -> Iterator[Databases]:
    dbs = Databases(postgres_url)
    dbs.prepare_template()
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture
async def database_url(databases: Databases) -> str:
    """A fresh database with every service's schema migrated to head."""
    return await databases.create()


@pytest.fixture(scope="session")
def local_kafka(infra_dir: Path) -> Iterator[KafkaBroker | None]:
    """The broker this session started, or None when `KAFKA_BOOTSTRAP_SERVERS` names one that already runs."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield None
        return
    broker = KafkaBroker(infra_dir / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_kafka: KafkaBroker | None) -> str:
    """A real Apache Kafka broker's services listener (PLAINTEXT, trusted): `KAFKA_BOOTSTRAP_SERVERS`'s or ours."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or local_kafka.bootstrap


@pytest.fixture(scope="session")
def kafka_partner_bootstrap(local_kafka: KafkaBroker | None) -> str:
    """The same broker's partner listener (SASL_PLAINTEXT, SCRAM-SHA-512, ACLs)."""
    servers = os.environ.get("KAFKA_PARTNER_BOOTSTRAP_SERVERS") or (local_kafka and local_kafka.partner_bootstrap)
    if not servers:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS is set without KAFKA_PARTNER_BOOTSTRAP_SERVERS (its SASL listener)")
    return servers


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of the test's own, for tests that kill it."""
    ensure_jars()
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A Postgres of the test's own, for tests that restart it."""
    with tempfile.TemporaryDirectory(prefix="crm-test-postgres-") as tmp:
        server = PostgresServer(Path(tmp) / "postgres")
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def topic_prefix() -> str:
    """Each test its own topics and consumer groups on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}."
