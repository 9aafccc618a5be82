"""`python -m gateway serve` — the front door (it has no migrations: no database of its own)."""

import argparse

import uvicorn

from shared.log import configure_logging

from gateway.settings import GatewaySettings

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    settings = GatewaySettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run("gateway.app:create_app", factory=True, host=args.host, port=args.port, log_config=None,
                timeout_graceful_shutdown=30, access_log=False)
