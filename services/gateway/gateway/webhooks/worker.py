"""Posts pending deliveries: claims the head of each (subscription, customer) queue, posts, records outcomes.

Claims are leases (`lease_until`), so several gateway replicas share the work and a crashed one's claims
come back after the lease. Failures back off exponentially (`base · 2^attempts`, capped) until
`webhook_max_attempts`, then the delivery is `failed` (it can be redelivered by hand). Outcomes of a batch
are written with one set-based UPDATE. Where a delivery may go is `destinations.py`'s business: the client
resolves through its vetting resolver, redirects are not followed, and only failure categories are recorded.
"""

import asyncio
import logging
import time

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.settings import GatewaySettings
from gateway.webhooks import repository, signing
from gateway.webhooks.destinations import DestinationPolicy, VettingResolver, WebhookUrlNotAllowed, failure_category

log = logging.getLogger(__name__)
# A receiver's answer is not used; reading a little of it lets the connection be reused, reading all of it
# would let a receiver fill the gateway's memory.
MAX_RESPONSE_READ = 64 * 1024


class DeliveryWorker:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], settings: GatewaySettings, destinations: DestinationPolicy
    ) -> None:
        self._session_factory = session_factory
        self._s = settings
        self._destinations = destinations
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=VettingResolver(self._destinations))
        self._http = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=self._s.webhook_timeout_s),
            headers={"User-Agent": "customer-value-crm-webhooks/1"},
        )
        self._task = asyncio.create_task(self.run(), name="gateway-webhook-worker")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=self._s.webhook_timeout_s + 5)
        if self._http is not None:
            await self._http.close()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                done = await self.run_once()
            except Exception:  # database down etc.: log, wait, try again
                log.exception("webhook delivery round failed")
                done = 0
            if done == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._s.webhook_poll_interval_s)
                except TimeoutError:
                    pass

    async def run_once(self) -> int:
        """One round: claim a batch, post each, record the outcomes; returns how many were attempted."""
        async with self._session_factory() as session, session.begin():
            claimed = (
                await session.execute(
                    repository.CLAIM,
                    {
                        "limit": self._s.webhook_batch_size,
                        "lease_s": self._s.webhook_timeout_s * 2 + 10,
                    },
                )
            ).all()
        if not claimed:
            return 0
        limit = asyncio.Semaphore(self._s.webhook_concurrency)

        async def attempt(row) -> tuple[int, str, int | None, str | None, float]:
            async with limit:
                code, error = await self._post(row)
            if code is not None and 200 <= code < 300:
                return row.id, "delivered", code, None, 0.0
            attempts = row.attempts + 1
            if attempts >= self._s.webhook_max_attempts:
                return row.id, "failed", code, error, 0.0
            delay = min(self._s.webhook_backoff_max_s, self._s.webhook_backoff_base_s * 2 ** (attempts - 1))
            return row.id, "pending", code, error, delay

        outcomes = await asyncio.gather(*(attempt(r) for r in claimed))
        async with self._session_factory() as session, session.begin():
            await session.execute(
                repository.RECORD,
                {
                    "ids": [o[0] for o in outcomes],
                    "statuses": [o[1] for o in outcomes],
                    "codes": [o[2] for o in outcomes],
                    "errors": [o[3] for o in outcomes],
                    "delays": [o[4] for o in outcomes],
                },
            )
        return len(outcomes)

    async def _post(self, row) -> tuple[int | None, str | None]:
        assert self._http is not None
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/cloudevents+json",
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.SIGNATURE_HEADER: signing.sign(row.secret, timestamp, row.payload),
            signing.DELIVERY_HEADER: str(row.id),
            signing.EVENT_TYPE_HEADER: row.event_type,
        }
        try:
            url = self._destinations.check_url(row.url)  # again: rows may predate the rules
            async with self._http.post(url, data=row.payload, headers=headers, allow_redirects=False) as resp:
                await resp.content.read(MAX_RESPONSE_READ)
        except (WebhookUrlNotAllowed, aiohttp.ClientError, TimeoutError) as exc:
            return None, failure_category(exc)
        if 300 <= resp.status < 400:
            return resp.status, f"HTTP {resp.status}: redirects are not followed"
        return resp.status, None if resp.status < 300 else f"HTTP {resp.status}"
