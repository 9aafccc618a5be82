"""The merged OpenAPI document the gateway serves at `/openapi.json`, produced without running anything.

`python -m deploy.openapi [-o FILE]` builds the four services' apps and the gateway's (nothing is started: no
database, no broker) and merges their documents with the gateway's own merge, so the result is the document a
running gateway serves with every service up. The TypeScript client is generated from it
(`clients/typescript`, `npm run generate`). It lives in `deploy/` because only the composition roots may import
every service.
"""

import argparse
import json
import sys
from pathlib import Path

from shared.internal_auth import generate_keypair
from shared.messaging.inprocess import InProcessTransport

import clv.app
import gateway.app
import interaction.app
import lifecycle.app
import segmentation.app
from clv.settings import ClvSettings
from gateway.docs.openapi import merge
from gateway.settings import GatewaySettings
from interaction.settings import InteractionSettings
from lifecycle.settings import LifecycleSettings
from segmentation.settings import SegmentationSettings

# The gateway's order (its upstream URLs): the merge keeps the first definition of a component name.
SERVICES = {
    "interaction": (InteractionSettings, interaction.app.create_app),
    "segmentation": (SegmentationSettings, segmentation.app.create_app),
    "clv": (ClvSettings, clv.app.create_app),
    "lifecycle": (LifecycleSettings, lifecycle.app.create_app),
}


def merged_document(*, bearer: bool = False) -> dict:
    transport = InProcessTransport()
    # A throwaway key pair: the apps refuse to be built without one, and nothing is ever signed here.
    private_key, public_key = generate_keypair()
    docs = {
        name: create_app(settings_cls(transport="inprocess", internal_token_public_key=public_key), transport).openapi()
        for name, (settings_cls, create_app) in SERVICES.items()
    }
    gateway_doc = gateway.app.create_app(
        GatewaySettings(transport="inprocess", internal_token_private_key=private_key), transport
    ).openapi()
    # Round-trip through JSON: the services' documents reach a running gateway as JSON too.
    return merge(gateway_doc, json.loads(json.dumps(docs)), bearer=bearer)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument("--bearer", action="store_true", help="as a gateway with JWT bearer tokens configured")
    args = parser.parse_args(argv)
    text = json.dumps(merged_document(bearer=args.bearer), indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
