"""`python -m <service> reconcile [--repair]`: a service's copies of other services' facts against the owners.

A copy (segmentation's stage, clv's value, …) follows the owner's published order (shared/contracts/ordering.py),
so it can only lag. Should it drift anyway (lost events, an edited row, a bug, a backup restored), this compares
each copy with the state the owner publishes on its state route, and with `--repair` applies the owner's state
with its version. The services supply what a copy is (`CopyCheck`); this module does the paging, the
comparison and the report, the same for all.

Reading order keeps it safe while events flow: a first pass compares owner pages with the copy; every
difference is then read again, the copy first and the owner second. An event's change commits at the owner
before it is published, so a copy read before the owner can only lag it: a remaining difference is drift or an
event in flight, and applying the owner's state is right for both (repairs use the owners' versions, so an
event in flight that arrives later is ignored as older).
"""

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import make_engine, make_session_factory
from shared.internal_auth import HEADER as INTERNAL_TOKEN_HEADER
from shared.internal_auth import Caller, TokenSigner

PAGE = 500
# Customers re-read per request in the confirmation pass: 100 ids keep the URL near 5 KB (servers refuse
# request lines past 8-16 KB), and the owners' state routes take at most 100.
CONFIRM = 100


class OwnerUnreachable(RuntimeError):
    pass


def owner_credentials(owner: str) -> dict[str, str]:
    """How reconcile proves itself to an owner, which answers only requests the gateway vouches for.

    Ops point `<SVC>_<OWNER>_URL` at the gateway and give an admin API key in `RECONCILE_API_KEY` (the gateway
    then signs the forwarded request as for any client). Where the gateway's private key is at hand instead
    (`INTERNAL_TOKEN_PRIVATE_KEY`: the gateway's own host, the test suite), the owner is called directly with a
    token minted for it, as the gateway would for an admin."""
    if api_key := os.environ.get("RECONCILE_API_KEY"):
        return {"X-API-Key": api_key}
    if private_key := os.environ.get("INTERNAL_TOKEN_PRIVATE_KEY"):
        token = TokenSigner(private_key).token(owner, Caller("reconcile", "admin"))
        return {INTERNAL_TOKEN_HEADER: token}
    return {}


class OwnerClient:
    """The one place reconcile calls another service's HTTP API."""

    def __init__(self, base_url: str, owner: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.owner = owner
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "OwnerClient":
        self._session = aiohttp.ClientSession(timeout=self.timeout, headers=owner_credentials(self.owner))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str, params: Sequence[tuple[str, str]]) -> dict:
        assert self._session is not None, "use OwnerClient as an async context manager"
        url = f"{self.base_url}{path}"
        try:
            async with self._session.get(url, params=list(params)) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise OwnerUnreachable(f"GET {url} answered {resp.status}: {body[:300]!r}")
                return orjson.loads(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OwnerUnreachable(f"GET {url}: {type(exc).__name__} {exc}") from exc

    async def pages(self, path: str, params: Sequence[tuple[str, str]]) -> AsyncIterator[list[dict]]:
        """Every page of a keyset-paged list route, following `next_cursor`."""
        cursor = None
        while True:
            page = await self.get(path, [*params, ("limit", str(PAGE)), *([("cursor", cursor)] if cursor else [])])
            yield page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return


@dataclass(frozen=True)
class CopyCheck:
    """One copy of one owner's fact in this service.

    - `owner_states(items)`: a page of the owner's state route → {customer id: the owner's state (a dict)};
    - `comparable(state)`: what of the owner's state the copy must equal, e.g. (stage, version);
    - `load_copy(session, ids, after, upto)`: the copy's comparables of the given customers, or of those with
      after < id <= upto (None: unbounded);
    - `repair(session, drifts)`: applies `drift.owner_state` (None: the owner has nothing) with its version."""

    fact: str
    owner: str  # the owning service's name (the audience of its credential)
    owner_url: str
    owner_path: str
    owner_params: tuple[tuple[str, str], ...]
    owner_states: Callable[[list[dict]], dict[uuid.UUID, dict]]
    comparable: Callable[[dict], Any]
    load_copy: Callable[..., Awaitable[dict[uuid.UUID, Any]]]
    repair: Callable[[AsyncSession, list["Drift"]], Awaitable[None]]
    # False when the copy is a history (lifecycle's value facts): a customer the owner no longer has is no drift.
    owner_absent_is_drift: bool = True


@dataclass(frozen=True)
class Drift:
    fact: str
    customer_id: uuid.UUID
    copy: Any  # None: the copy has nothing for the customer
    owner: Any  # None: the owner has nothing for the customer
    owner_state: dict | None = None

    def line(self) -> str:
        return orjson.dumps(
            {"fact": self.fact, "customer_id": str(self.customer_id), "copy": self.copy, "owner": self.owner}, default=str
        ).decode()


def newest_per_customer(items: list[dict]) -> dict[uuid.UUID, dict]:
    """One owner state per customer from a state page: the item with the greatest version (clv publishes one
    value per currency; a copy that keeps one keeps the last published of any)."""
    out: dict[uuid.UUID, dict] = {}
    for item in items:
        c = uuid.UUID(item["customer_id"])
        if c not in out or (item["version"] or 0) > (out[c]["version"] or 0):
            out[c] = item
    return out


async def run_checks(database_url: str, checks: Sequence[CopyCheck], repair: bool) -> list[Drift]:
    """`reconcile` on a service's own database, for its command line."""
    engine = make_engine(database_url, pool_size=4)
    try:
        return await reconcile(make_session_factory(engine), checks, repair)
    finally:
        await engine.dispose()


async def find_drift(sessions: async_sessionmaker[AsyncSession], check: CopyCheck) -> list[Drift]:
    """Every customer whose copy differs from the owner's state (confirmed by a second, ordered read)."""

    def compare(copy: dict, owner: dict) -> list[uuid.UUID]:
        ids = set(owner) | set(copy) if check.owner_absent_is_drift else set(owner)
        return [c for c in sorted(ids) if copy.get(c) != (check.comparable(owner[c]) if c in owner else None)]

    candidates: list[uuid.UUID] = []
    async with OwnerClient(check.owner_url, check.owner) as client:
        after: uuid.UUID | None = None
        async for items in client.pages(check.owner_path, check.owner_params):
            owner = check.owner_states(items)
            upto = max(owner) if owner else None
            async with sessions() as session:
                copy = await check.load_copy(session, None, after, upto)
            candidates += compare(copy, owner)
            after = upto if upto is not None else after
        if check.owner_absent_is_drift:
            async with sessions() as session:  # copies of customers past the owner's last one
                candidates += sorted(await check.load_copy(session, None, after, None))
        drifts = []
        for start in range(0, len(candidates), CONFIRM):
            ids = candidates[start : start + CONFIRM]
            async with sessions() as session:  # the copy first, then the owner (see the module doc)
                copy = await check.load_copy(session, ids, None, None)
            page = await client.get(check.owner_path, [*check.owner_params, *(("customer_id", str(c)) for c in ids)])
            owner = check.owner_states(page["items"])
            drifts += [
                Drift(check.fact, c, copy.get(c), check.comparable(owner[c]) if c in owner else None, owner.get(c))
                for c in compare({c: copy[c] for c in ids if c in copy}, {c: owner[c] for c in ids if c in owner})
            ]
    return drifts


async def reconcile(
    sessions: async_sessionmaker[AsyncSession], checks: Sequence[CopyCheck], repair: bool, out: Callable[[str], None] = print
) -> list[Drift]:
    """Reports each drift on its own line (JSON); with `repair`, applies the owners' states in one transaction
    per copy. Returns the drifts found."""
    found: list[Drift] = []
    for check in checks:
        drifts = await find_drift(sessions, check)
        for d in drifts:
            out(d.line())
        if repair and drifts:
            async with sessions.begin() as session:
                await check.repair(session, drifts)
        out(
            orjson.dumps(
                {"fact": check.fact, "owner": check.owner_url, "drifted": len(drifts), "repaired": len(drifts) if repair else 0}
            ).decode()
        )
        found += drifts
    return found
