import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.support import InternalToken


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (workers included), and a client that calls it in-process.

    The client calls as the gateway would: each request carries an internal token for this service
    (`auth=None` on a request sends it without one).
    """
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        # A bare app (no service runtime: a test's own stand-in) verifies no token, so none is sent.
        runtime = getattr(app.state, "runtime", None)
        auth = InternalToken(runtime.settings.service_name) if runtime is not None else None
        async with httpx.AsyncClient(transport=transport, base_url="http://test", auth=auth) as client:
            yield client


@pytest.fixture
def make_client():
    return serving
