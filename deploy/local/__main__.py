"""``python -m deploy.local up|down|status|env [--dir DIR]``: the embedded dev infrastructure.

``up`` starts (or reuses) a real PostgreSQL with database ``crm`` and a real Kafka broker whose
data, logs and ports live under the state dir (default ``<repo>/.local-infra/``), so a second
``up`` is fast and keeps the data. The ``KEY=value`` env lines go to stdout (``set -a; eval
"$(python -m deploy.local env)"``); everything human-readable goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

from deploy.local.kafka import KafkaBroker
from deploy.local.postgres import PostgresServer

DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".local-infra"
DATABASE = "crm"


def _servers(state: Path) -> tuple[PostgresServer, KafkaBroker]:
    return PostgresServer(state / "postgres"), KafkaBroker(state / "kafka")


def _env_lines(pg: PostgresServer, kafka: KafkaBroker) -> str:
    return f"DATABASE_URL={pg.async_url(DATABASE)}\nKAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap}"


def _up(state: Path) -> int:
    pg, kafka = _servers(state)
    for name, server in (("postgres", pg), ("kafka", kafka)):
        began, reused = time.monotonic(), server.is_running()
        server.start()
        if server is pg:
            pg.create_database(DATABASE)
        verb = "reused" if reused else "started"
        print(f"{name}: {verb} in {time.monotonic() - began:.1f}s (data {server.data_dir})", file=sys.stderr)
    print(_env_lines(pg, kafka))
    return 0


def _down(state: Path) -> int:
    pg, kafka = _servers(state)
    kafka.stop()
    pg.stop()
    shutil.rmtree(state, ignore_errors=True)
    print(f"stopped postgres and kafka; removed {state}", file=sys.stderr)
    return 0


def _status(state: Path) -> int:
    pg, kafka = _servers(state)
    pg_state = f"running on 127.0.0.1:{pg.port}" if pg.is_running() else "stopped"
    kafka_state = f"running on {kafka.bootstrap} (pid {kafka.pid})" if kafka.is_running() else "stopped"
    print(f"state dir: {state}\npostgres: {pg_state}\nkafka: {kafka_state}")
    return 0 if pg.is_running() and kafka.is_running() else 1


def _env(state: Path) -> int:
    pg, kafka = _servers(state)
    if not (pg.is_running() and kafka.is_running()):
        print(f"local infra under {state} is not running; run `python -m deploy.local up`", file=sys.stderr)
        return 1
    print(_env_lines(pg, kafka))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"state dir (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {"up": _up, "down": _down, "status": _status, "env": _env}
    return commands[args.command](args.dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
