import pytest

from shared.messaging.inprocess import InProcessTransport
from tests.services.conftest import serving
from tests.services.segmentation.helpers import Feeder

import segmentation.app
from segmentation.settings import SegmentationSettings


@pytest.fixture
async def feeder(database_url):
    f = Feeder(database_url)
    yield f
    await f.close()


@pytest.fixture
async def client(database_url):
    """The segmentation API on a real Postgres; consumers off (tests feed events through the handlers)."""
    settings = SegmentationSettings(database_url=database_url, transport="inprocess", run_workers=False)
    app = segmentation.app.create_app(settings, InProcessTransport())
    async with serving(app) as c:
        c.executor = app.state.run_executor
        c.exports = app.state.export_executor
        yield c
