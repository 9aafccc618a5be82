"""The Kafka door: every malformed shape goes to `partner.events.dlq` with its reason; valid events are kept."""

import orjson
import pytest

from shared.contracts.topics import PARTNER_EVENTS, dlq
from shared.db import make_engine
from tests.services.conftest import serving
from tests.services.interaction.events import order
from tests.services.interaction.malformed import MALFORMED
from tests.support import produce, read_topic, scalar, wait_until

from interaction.app import create_app
from interaction.settings import InteractionSettings

pytestmark = pytest.mark.kafka


def _identified(data: bytes) -> bytes:
    """A partner event as JSON text, so its data can hold what a JSON encoder refuses."""
    return (
        b'{"specversion": "1.0", "id": "raw-%s", "source": "shop-eu", "type": "customer.identified", '
        b'"subject": "M-1", "time": "2026-11-01T10:00:00Z", "data": %s}' % (str(hash(data)).encode(), data)
    )


RAW = [
    ("bad JSON", b'{"specversion": ', "not valid JSON"),
    ("bad UTF-8", b"\xff\xfe\xfd", "not valid JSON"),
    ("empty", b"", "JSON"),
    ("lone surrogate", _identified(b'{"attributes": {"note": "\\ud800"}}'), "not valid JSON"),
    ("number beyond a double", _identified(b'{"attributes": {"n": 1e999999}}'), "data.attributes.n: must be finite"),
    ("NaN", _identified(b'{"attributes": {"n": NaN}}'), "data.attributes.n: must be finite"),
    ("integer beyond 64 bits", _identified(b'{"attributes": {"n": %d}}' % 2**70), "data.attributes.n: integer"),
    ("data nested 254 levels", _identified(b'{"note": %s}' % (b"[" * 252 + b"]" * 252)), "JSON"),
]


async def test_every_malformed_event_is_dead_lettered_with_its_reason(database_url, kafka_bootstrap, topic_prefix):
    topic = topic_prefix + PARTNER_EVENTS
    messages = [(b"V-1", orjson.dumps(order("V-1", "V-O-1")))]
    messages += [(b"M-1", orjson.dumps(item)) for _, item, _ in MALFORMED]
    messages += [(b"M-1", raw) for _, raw, _ in RAW]
    messages.append((b"V-2", orjson.dumps(order("V-2", "V-O-2"))))
    await produce(kafka_bootstrap, topic, messages)

    settings = InteractionSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, relay_poll_interval_s=0.2
    )
    engine = make_engine(database_url)
    expected = len(MALFORMED) + len(RAW)
    async with serving(create_app(settings)):
        await wait_until(lambda: _count(engine, "purchase", 2), message="both valid orders stored")
        dead = await read_topic(kafka_bootstrap, dlq(topic), expected=expected, timeout=60)
    assert len(dead) == expected
    expected_reason = {
        value: (name, reason) for (_, value), (name, _, reason) in zip(messages[1:-1], [*MALFORMED, *RAW], strict=True)
    }
    for record in dead:
        name, reason = expected_reason.pop(record.value)
        error = dict(record.headers)["dlq_error"].decode()
        assert reason in error, f"{name}: {error}"
    assert not expected_reason, "every malformed event is dead-lettered once"
    assert await scalar(engine, "select count(*) from interaction.customer_identifier where external_id = 'M-1'") == 0
    await engine.dispose()


async def _count(engine, table: str, n: int) -> bool:
    return await scalar(engine, f"select count(*) from interaction.{table}") == n
