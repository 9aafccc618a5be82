"""Composing the 360° view: from the gateway's copy when it is fresh, from the owners otherwise.

A part is served from the copy when it was read from its owner at least `settle_s` after the last event
the gateway consumed about the customer (the other services consume the same events a little later than the
gateway: a read right after an event could copy the owner's state from before it) and is younger than
`max_age_s` (a bound for what an owner changes without publishing anything about the customer). Otherwise
the owner is asked and the copy refilled. An owner that cannot answer is replaced by the copy, marked
`stale`; only a part with neither is `unavailable`. `Cache-Control: no-cache` asks every owner.
"""

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from shared.internal_auth import Caller
from shared.problems import DomainError, NotFound

from gateway.customer_view import repository
from gateway.customer_view.models import PARTS
from gateway.customer_view.schemas import PART_SOURCES
from gateway.upstream import Upstreams, UpstreamUnavailable

log = logging.getLogger(__name__)
RESOLVED = re.compile(rb'"resolved_from"\s*:\s*"')
DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(slots=True)
class Part:
    status: int  # 200: body is the owner's JSON; 404: body is the owner's reason (UTF-8)
    body: bytes
    as_of: datetime
    version: int | None
    from_copy: bool
    stale: bool = False


class CustomerViews:
    def __init__(self, upstreams: Upstreams, *, dsn: str | None, pool_size: int, settle_s: float, max_age_s: float) -> None:
        self.upstreams = upstreams
        self.dsn = dsn
        self.pool_size = pool_size
        self.settle = timedelta(seconds=settle_s)
        self.max_age = timedelta(seconds=max_age_s)
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        if self.dsn:
            self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # --- the copy ---------------------------------------------------------------------------------------

    def _cached(self, row: Any, part: str, now: datetime, live: bool) -> Part | None:
        if row is None or row[f"{part}_status"] is None:
            return None
        as_of = row[f"{part}_as_of"]
        changed = max(row["last_event_at"], row.get(f"{part}_changed_at") or row["last_event_at"])
        fresh = not live and as_of >= changed + self.settle and now - as_of <= self.max_age
        return Part(row[f"{part}_status"], row[f"{part}_body"], as_of, row[f"{part}_version"], True, not fresh)

    async def _read(self, customer_id: uuid.UUID) -> dict[uuid.UUID, Any]:
        if self.pool is None:
            return {}
        try:
            return await repository.read(self.pool, customer_id)
        except DB_ERRORS:  # the copy is an optimisation: without it, the owners answer
            log.warning("customer view copy unreadable, asking the owners", exc_info=True)
            return {}

    async def _fill(self, customer_id: uuid.UUID, parts: dict[str, Part], survivor: uuid.UUID | None, set_survivor: bool) -> None:
        fetched = {p: (v.status, v.body, v.as_of) for p, v in parts.items() if not v.from_copy}
        if self.pool is None or not (fetched or set_survivor):
            return
        try:
            await repository.fill(self.pool, customer_id, fetched, survivor, set_survivor)
        except DB_ERRORS:
            log.warning("customer view copy not written", exc_info=True)

    # --- the owners -------------------------------------------------------------------------------------

    async def _ask(self, part: str, cid: uuid.UUID, caller: Caller, at: datetime, version: int | None) -> Part:
        service, _, suffix = PART_SOURCES[part]
        resp = await self.upstreams.request(service, "GET", f"/v1/customers/{cid}{suffix}", caller=caller)
        if resp.status == 404:
            try:
                reason = str(orjson.loads(resp.body).get("detail") or "not found")
            except (orjson.JSONDecodeError, AttributeError):
                reason = "not found"
            return Part(404, f"{service}: {reason}".encode(), at, version, False)
        if resp.status != 200 or not resp.body.lstrip()[:1] == b"{":
            raise UpstreamUnavailable(f"{service} answered {resp.status}", service=service)
        return Part(200, resp.body, at, version, False)

    async def _complete(self, parts: dict[str, Part | None], names: list[str], cid: uuid.UUID, row: Any, caller: Caller) -> None:
        """Asks the owners of `names` (about `cid`); a failed owner leaves its copy (marked stale) or nothing."""
        at = datetime.now(UTC)
        answers = await asyncio.gather(
            *(self._ask(p, cid, caller, at, row[f"{p}_version"] if row is not None else None) for p in names),
            return_exceptions=True,
        )
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, Part):
                parts[name] = answer
            elif isinstance(answer, DomainError):
                if (kept := parts[name]) is not None:
                    kept.stale = True
                else:
                    parts[name] = None
            else:
                raise answer

    async def compose(self, customer_id: uuid.UUID, caller: Caller, *, live: bool = False) -> bytes:
        now = datetime.now(UTC)
        rows = await self._read(customer_id)
        own = rows.get(customer_id)
        guess = (own["survivor_id"] if own is not None else None) or customer_id
        row = rows.get(guess)
        parts: dict[str, Part | None] = {"profile": self._cached(own, "profile", now, live)}
        parts |= {p: self._cached(row, p, now, live) for p in PARTS[1:]}
        needed = [p for p in PARTS if (part := parts[p]) is None or part.stale]
        if "profile" in needed:
            profile_parts = {"profile": parts["profile"]}
            await asyncio.gather(
                self._complete(profile_parts, ["profile"], customer_id, own, caller),
                self._complete(parts, [p for p in needed if p != "profile"], guess, row, caller),
            )
            parts["profile"] = profile_parts["profile"]
        elif needed:
            await self._complete(parts, needed, guess, row, caller)

        profile = parts["profile"]
        if profile is None:
            raise UpstreamUnavailable("interaction could not answer", service="interaction")
        if profile.status == 404:
            raise NotFound(f"no customer {customer_id}")
        subject = customer_id
        if RESOLVED.search(profile.body):  # a cheap test first: the common answer stays unparsed
            subject = uuid.UUID(orjson.loads(profile.body)["customer_id"])
        if subject != guess:  # the id resolves elsewhere than the copy said: the survivor's parts, from the owners
            row = None
            parts |= {p: None for p in PARTS[1:]}
            await self._complete(parts, list(PARTS[1:]), subject, None, caller)
        resolved_from = customer_id if subject != customer_id else None

        others = {p: v for p in PARTS[1:] if (v := parts[p]) is not None}
        if resolved_from is None:  # one row: one write
            await self._fill(customer_id, {"profile": profile, **others}, None, not profile.from_copy)
        else:
            if not profile.from_copy:
                await self._fill(customer_id, {"profile": profile}, subject, True)
            await self._fill(subject, others, None, False)
        return self._render(subject, resolved_from, parts)

    async def profiles(self, customer_ids: list[uuid.UUID], caller: Caller, fanout: int = 8) -> dict[uuid.UUID, Part | None]:
        """The profile part of many customers (a page of segment members), by the same rules as the view's:
        from the copy where fresh, else from interaction (at most `fanout` asks at a time) and the copy refilled;
        an interaction that cannot answer leaves the copy, marked stale, or None."""
        now = datetime.now(UTC)
        rows: dict[uuid.UUID, Any] = {}
        if self.pool is not None and customer_ids:
            try:
                rows = await repository.read_many(self.pool, customer_ids)
            except DB_ERRORS:
                log.warning("customer view copy unreadable, asking interaction", exc_info=True)
        parts: dict[uuid.UUID, Part | None] = {c: self._cached(rows.get(c), "profile", now, False) for c in customer_ids}
        gate = asyncio.Semaphore(fanout)

        async def refresh(cid: uuid.UUID) -> None:
            one: dict[str, Part | None] = {"profile": parts[cid]}
            async with gate:
                await self._complete(one, ["profile"], cid, rows.get(cid), caller)
            part = parts[cid] = one["profile"]
            if part is not None and not part.from_copy:
                survivor = (
                    uuid.UUID(orjson.loads(part.body)["customer_id"])
                    if part.status == 200 and RESOLVED.search(part.body)
                    else None
                )
                await self._fill(cid, {"profile": part}, survivor, True)

        await asyncio.gather(*(refresh(c) for c, p in parts.items() if p is None or p.stale))
        return parts

    @staticmethod
    def _render(subject: uuid.UUID, resolved_from: uuid.UUID | None, parts: dict[str, Part | None]) -> bytes:
        unavailable = [name for name, part in parts.items() if part is None]
        absent = {name: part.body.decode() for name, part in parts.items() if part is not None and part.status == 404}
        sources = {
            name: {
                "as_of": part.as_of if part else None,
                "version": part.version if part else None,
                "from_copy": bool(part and part.from_copy),
                "stale": bool(part and part.stale),
            }
            for name, part in parts.items()
        }
        # The owners' JSON objects are spliced in as they are: re-parsing and re-validating them here would
        # cost more than the rest of the gateway's work on this hot path (the owners validate what they send).
        return b"".join(
            [
                b'{"customer_id":"',
                str(subject).encode(),
                b'"',
                b',"resolved_from":',
                orjson.dumps(str(resolved_from) if resolved_from else None),
                *(
                    b',"' + name.encode() + b'":' + (part.body if part is not None and part.status == 200 else b"null")
                    for name, part in parts.items()
                ),
                b',"unavailable":',
                orjson.dumps(unavailable),
                b',"absent":',
                orjson.dumps(absent),
                b',"sources":',
                orjson.dumps(sources),
                b"}",
            ]
        )
