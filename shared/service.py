"""The composition root every domain service is built with: one FastAPI app plus its background work.

`ServiceRuntime` owns the engine, the transport, the outbox relay and the inbox consumers, starts them in the
app's lifespan and stops them gracefully (consumers finish the batch in hand). The embedded mode passes one
shared in-process transport to every service; otherwise each service builds its own from its settings.

A service's own background work goes through the runtime too, the one way for every service:
- `add_loop(name, factory)`: a loop this replica runs while it runs workers (job recovery, schedules),
  cancelled at stop;
- `on_start(hook)`: awaited once the workers have started (e.g. launch the jobs left queued);
- `jobs.launch(coroutine, name)`: a job (fit, run, replay) held by `runtime.jobs` (`shared/jobs.Launcher`),
  given `job_drain_s` to finish at stop before it is cancelled.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request

from shared import jobs as job_leases
from shared.db import asyncpg_dsn, make_engine, make_read_session_factory, make_session_factory, ping
from shared.http import fastapi_telemetry, health_router, install_http_plumbing
from shared.internal_auth import InternalAuthMiddleware, TokenVerifier
from shared.messaging.inbox import InboxConsumer, InboxPart, Subscription
from shared.messaging.inprocess import InProcessTransport
from shared.messaging.kafka import KafkaTransport
from shared.messaging.outbox import Outbox, OutboxRelay
from shared.messaging.tables import MessagingTables
from shared.messaging.transport import Transport
from shared.problems import install_problem_handlers
from shared.serving import service_started
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


def build_transport(settings: ServiceSettings) -> Transport:
    if settings.transport == "inprocess":
        return InProcessTransport()
    return KafkaTransport(settings.kafka_bootstrap_servers, client_id=settings.service_name)


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        schema: str,
        tables: MessagingTables,
        transport: Transport | None = None,
        job_drain_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.engine = make_engine(settings.database_url, settings.db_pool_size)
        self.session_factory = make_session_factory(engine=self.engine)
        self.read_session_factory = make_read_session_factory(self.engine)
        self._owns_transport = transport is None
        self.transport = transport or build_transport(settings)
        self.outbox = Outbox(tables, schema, settings.topic_prefix)
        self.relay = OutboxRelay(
            engine=self.engine,
            dsn=asyncpg_dsn(settings.database_url),
            tables=tables,
            schema=schema,
            transport=self.transport,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
            retain_sent=isinstance(self.transport, InProcessTransport),
        )
        self.tables = tables
        self.consumers: list[InboxConsumer] = []
        self._tasks: list[asyncio.Task] = []
        self._loop_factories: list[tuple[str, Callable[[], Coroutine]]] = []
        self._loops: list[asyncio.Task] = []
        self._start_hooks: list[Callable[[], Awaitable[None]]] = []
        self.jobs = job_leases.Launcher(job_drain_s)

    def add_loop(self, name: str, factory: Callable[[], Coroutine]) -> None:
        """A loop to run while this replica runs workers (recovery, schedules); it is cancelled at stop."""
        self._loop_factories.append((name, factory))

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Awaited once the workers have started (only when this replica runs workers)."""
        self._start_hooks.append(hook)

    def subscribe(self, subscription: Subscription) -> InboxConsumer:
        """Add a consumer; its inbox name is `<service>.<subscription>`, its Kafka group the same, prefixed (and
        likewise for the subscription's `former_names`)."""
        part = self._part(subscription)
        consumer = self._consumer(
            self.settings.topic_prefix + part.inbox_name,
            [part],
            adopt_from=[[self.settings.topic_prefix + name for name in part.former_inbox_names]],
        )
        self.consumers.append(consumer)
        return consumer

    def subscribe_together(self, name: str, subscriptions: list[Subscription]) -> None:
        """One consumer, Kafka group `<prefix><service>.<name>`, for subscriptions that read the same topics: each
        event is fetched and parsed once and applied by all of them in one transaction, each keeping its own inbox
        name. Replaces their own consumers: the new group starts where the slowest of them left off. See
        docs/development.md, "Merging consumers"."""
        prefix = self.settings.topic_prefix
        parts = [self._part(s) for s in subscriptions]
        lineages = [[prefix + p.inbox_name, *(prefix + f for f in p.former_inbox_names)] for p in parts]
        self.consumers.append(self._consumer(f"{prefix}{self.settings.service_name}.{name}", parts, adopt_from=lineages))

    def _part(self, subscription: Subscription) -> InboxPart:
        service = self.settings.service_name
        former = [f"{service}.{name}" for name in subscription.former_names]
        return InboxPart(f"{service}.{subscription.name}", subscription, former)

    def _consumer(self, group_id: str, parts: list[InboxPart], adopt_from: list[list[str]]) -> InboxConsumer:
        return InboxConsumer(
            group_id=group_id,
            parts=parts,
            topic_prefix=self.settings.topic_prefix,
            transport=self.transport,
            session_factory=self.session_factory,
            tables=self.tables,
            batch_size=self.settings.consumer_batch_size,
            max_attempts=self.settings.consumer_max_attempts,
            adopt_from=adopt_from,
        )

    async def start(self) -> None:
        if self._owns_transport:
            await self.transport.start()
        if self.settings.run_workers:
            # One lease length per process, read at each claim (a dead replica's jobs are taken over after it).
            job_leases.configure(getattr(self.settings, "job_lease_s", job_leases.LEASE_S))
            self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.schema}-relay"))
            for c in self.consumers:
                self._tasks.append(asyncio.create_task(c.run(), name=c.group_id))
            for hook in self._start_hooks:
                await hook()
            self._loops = [asyncio.create_task(factory(), name=name) for name, factory in self._loop_factories]
        service_started()

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        # Jobs before the consumers and the engine they write with.
        await self.jobs.stop()
        for c in self.consumers:
            c.stop()
        self.relay.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        for t in self._tasks:
            t.cancel()
        self._tasks.clear()
        if self._owns_transport:
            await self.transport.stop()
        await self.engine.dispose()

    async def check_database(self) -> None:
        await ping(self.engine)

    async def check_transport(self) -> None:
        await self.transport.check()

    async def check_workers(self) -> None:
        if not self.settings.run_workers:
            return
        dead = [t.get_name() for t in self._tasks + self._loops if t.done()]
        if dead:
            raise RuntimeError(f"background tasks ended: {', '.join(dead)}")


# Both dependencies are `async def` though they never wait: FastAPI runs a plain `def` dependency in its thread
# pool, a hand-off to a worker thread and back on every request (a tenth of interaction's CPU per single-event
# POST /v1/events, profiled under `python -m bench http_ingest`).
async def _outbox(request: Request) -> Outbox:
    return request.app.state.runtime.outbox


async def runtime_settings(request: Request) -> ServiceSettings:
    """The running service's settings; each service types them with its own class (its `SettingsDep`)."""
    return request.app.state.runtime.settings


# The service's outbox, for endpoints that publish events in the request's transaction.
OutboxDep = Annotated[Outbox, Depends(_outbox)]


def create_service_app(
    runtime: ServiceRuntime, *, title: str, description: str, routers: Sequence[APIRouter], version: str = "0.1.0"
) -> FastAPI:
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        log.info("%s started (transport=%s)", settings.service_name, settings.transport)
        try:
            yield
        finally:
            await runtime.stop()
            log.info("%s stopped", settings.service_name)

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan, telemetry=fastapi_telemetry())
    app.state.runtime = runtime
    app.state.session_factory = runtime.session_factory
    app.state.read_session_factory = runtime.read_session_factory
    install_problem_handlers(app)
    # Inside the metrics and correlation layers: refused requests are counted and carry a correlation id.
    app.add_middleware(InternalAuthMiddleware, verifier=TokenVerifier(settings.internal_token_public_key, settings.service_name))
    install_http_plumbing(app, settings.service_name)
    app.include_router(
        health_router(
            {
                "database": runtime.check_database,
                "transport": runtime.check_transport,
                "workers": runtime.check_workers,
            }
        )
    )
    for router in routers:
        app.include_router(router)
    return app
