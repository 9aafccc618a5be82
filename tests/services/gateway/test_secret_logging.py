"""Security issue, class 8: a failed statement never puts credential values into the logs or errors."""

import logging
import traceback
import uuid

import pytest
import sqlalchemy as sa

from tests.services.gateway.conftest import Stack, create_key

from gateway.keys import repository
from gateway.keys.service import generate_key, hash_key


async def test_a_failed_insert_into_the_key_table_logs_no_parameters(stack: Stack, caplog) -> None:
    raw = generate_key()
    row = {
        "id": uuid.uuid4(),
        "name": "dup",
        "role": "admin",
        "partner_id": None,
        "key_hash": hash_key(raw),
        "prefix": raw[:10],
        "expires_at": None,
        "rate_limit_per_s": None,
    }
    async with stack.app.state.session_factory() as session, session.begin():
        await repository.insert(session, row)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(sa.exc.IntegrityError) as failed:
        async with stack.app.state.session_factory() as session, session.begin():
            await repository.insert(session, row | {"id": uuid.uuid4()})
    logging.getLogger("test").exception("insert failed", exc_info=failed.value)
    text = "".join(traceback.format_exception(failed.value)) + "\n".join(r.getMessage() for r in caplog.records)
    assert raw[:10] not in text
    assert hash_key(raw).hex() not in text.replace("\\x", "")
    assert repr(hash_key(raw))[2:-1] not in text


async def test_webhook_url_credentials_are_redacted_for_readers(stack: Stack) -> None:
    """A URL with credentials stored before creation refused them is never shown back (analysts read webhooks)."""
    sub_id = uuid.uuid4()
    async with stack.app.state.session_factory() as session, session.begin():
        await session.execute(
            sa.text(
                "insert into gateway.webhook_subscription (id, url, event_types, secret) values (:id, :url, :types, 'whsec_x')"
            ),
            {"id": sub_id, "url": "https://hook-user:hunter2@hooks.example.com/x?a=1", "types": ["stage.changed"]},
        )
    analyst = await create_key(stack, "analyst")
    async with stack.client(analyst) as client:
        one = (await client.get(f"/v1/webhooks/{sub_id}")).json()
        listed = (await client.get("/v1/webhooks")).json()["items"]
    assert one["url"] == "https://***@hooks.example.com/x?a=1"
    assert [w["url"] for w in listed] == ["https://***@hooks.example.com/x?a=1"]
