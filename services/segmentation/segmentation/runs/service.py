"""Runs: load the aggregates (one binary COPY), compute in numpy off the event loop, write results back
(one binary COPY on a connection of their own) while the run's transaction diffs the memberships and writes
their events (segments/run_diff.py), summarise. One run at a time per process.
"""

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import jobs
from shared.contracts.envelope import Envelope
from shared.contracts.segmentation import SOURCE, SegmentationRunCompleted
from shared.contracts.topics import SEGMENTATION_EVENTS
from shared.messaging.outbox import Outbox
from shared.problems import DomainError, NotFound

from segmentation.analytics import clustering, rfm, tiers
from segmentation.rules.service import refresh_rule_segments, segment_id_for
from segmentation.runs import repository
from segmentation.runs.binary_copy import copy_in, uuid_bytes
from segmentation.runs.models import segmentation_run
from segmentation.schemes import repository as schemes_repository
from segmentation.segments import run_diff
from segmentation.segments.membership import notify_relay

log = logging.getLogger(__name__)
KINDS = ("rfm", "clustering", "tiers")
KEEP_RESULTS = 3  # succeeded runs per family whose per-customer results are kept (for comparisons)
TIERS_FAMILIES = ["abc", "clv-tier", "portfolio"]


# One COPY of a run's results: columns (name, type), values per column (arrays or scalars), rows.
ResultsWrite = tuple[list[tuple[str, str]], dict[str, Any], int]


class RunNotFound(NotFound):
    pass


class UnknownScheme(DomainError):
    status, slug, title = 422, "unknown-scheme", "Unknown RFM scheme"


class NotForKind(DomainError):
    status, slug, title = 422, "parameter-not-for-kind", "Parameter does not apply to this kind of run"


def family_of(kind: str, scheme: str | None) -> str:
    return {"rfm": f"rfm:{scheme or 'default'}", "clustering": "cluster", "tiers": "tiers"}[kind]


@dataclass
class Aggregates:
    rows: np.ndarray
    tiers: list[str]
    currencies: list[str] = dataclasses.field(default_factory=list)  # value_currency i → currencies[i - 1]

    @property
    def n(self) -> int:
        return len(self.rows)


async def load_aggregates(session: AsyncSession, currency: str, with_value: bool = False) -> Aggregates:
    await repository.tune_for_run(session)
    tier_names = await repository.value_tiers(session)
    if not with_value:
        rows = await repository.aggregate_rows(session, currency, tier_names)
        return Aggregates(by_customer_id(rows), tier_names)
    currencies = await repository.value_currencies(session)
    rows = await repository.aggregate_rows(session, currency, tier_names, currencies)
    return Aggregates(by_customer_id(rows), tier_names, currencies)


def by_customer_id(rows: np.ndarray) -> np.ndarray:
    """Rows in customer-id order: results are then written in index order (far fewer random page visits), and
    sampling in clustering does not depend on the table's physical order."""
    if len(rows) < 2:
        return rows
    halves = np.ascontiguousarray(rows["customer_id"]).view(">u8").reshape(-1, 2)
    return rows[np.lexsort((halves[:, 1], halves[:, 0]))]


async def get_scheme(session: AsyncSession, key: str) -> dict:
    row = await schemes_repository.get(session, key)
    if row is None:
        raise UnknownScheme(f"no RFM scheme with key {key!r}")
    return {"key": row["key"], "name": row["name"], "segments": row["segments"]}


# ---- pure computations on the loaded arrays (also what the benchmark times) ----


def compute_rfm(rows: np.ndarray, as_of_epoch: float, scheme_segments: list[dict]) -> dict[str, np.ndarray]:
    scores = rfm.rfm_scores(rows["last_purchase"], rows["frequency"], rows["monetary"], as_of_epoch)
    index = rfm.assign_segments(scores.r, scores.f, rfm.scheme_lookup(scheme_segments))
    size, revenue = rfm.segment_summary(index, rows["monetary"], len(scheme_segments))
    return {"r": scores.r, "f": scores.f, "m": scores.m, "segment": index, "size": size, "revenue": revenue}


def compute_features(rows: np.ndarray, as_of_epoch: float) -> np.ndarray:
    recency = np.clip((as_of_epoch - rows["last_purchase"]) / rfm.SECONDS_PER_DAY, 0, None)
    first_seen = np.where(np.isnan(rows["first_seen"]), rows["last_purchase"], rows["first_seen"])
    tenure = np.clip((as_of_epoch - first_seen) / rfm.SECONDS_PER_DAY, 0, None)
    return clustering.feature_matrix(
        recency, rows["frequency"].astype(np.float64), rows["monetary"], tenure, rows["touchpoints"].astype(np.float64)
    )


def value_group(rows: np.ndarray) -> np.ndarray:
    """The portfolio value group of each customer: currency × basis (values are compared inside a group only)."""
    return rows["value_currency"].astype(np.int64) * (len(tiers.VALUE_BASES) + 1) + rows["value_basis"]


def describe_group(group: int, currencies: list[str]) -> dict[str, str | None]:
    currency, basis = divmod(group, len(tiers.VALUE_BASES) + 1)
    return {"currency": currencies[currency - 1] if currency else None, "basis": tiers.VALUE_BASES[basis - 1] if basis else None}


def compute_tiers(rows: np.ndarray, as_of_epoch: float, currencies: list[str] | None = None) -> dict[str, Any]:
    """ABC classes and portfolio quadrants. With the value columns loaded (`load_aggregates(with_value=True)`)
    the value axis is per customer in its own currency and basis; without (the benchmark's bare aggregates), CLV
    else revenue in the run's currency, as one group."""
    scores = rfm.rfm_scores(rows["last_purchase"], rows["frequency"], rows["monetary"], as_of_epoch)
    abc = tiers.abc_classes(rows["monetary"])
    if "value" in (rows.dtype.names or ()):
        value, group = rows["value"], value_group(rows)
    else:
        value, group = np.where(np.isnan(rows["clv"]), rows["monetary"], rows["clv"]), np.zeros(len(rows), np.int64)
    engagement = (scores.r.astype(np.float64) + scores.f) / 2
    quadrant, value_cuts, engagement_cut = tiers.portfolio_quadrants(value, engagement, group)
    groups: list[dict[str, Any]] = []
    for g, cut in value_cuts.items():
        in_group = group == g
        groups.append(
            {
                **describe_group(g, currencies or []),
                "group": g,
                "customers": int(in_group.sum()),
                "value_threshold": round(cut, 4),
                "quadrants": {
                    tiers.QUADRANTS[q]: {
                        "customers": int(((quadrant == q) & in_group).sum()),
                        "average_value": _mean(value[(quadrant == q) & in_group]),
                    }
                    for q in range(len(tiers.QUADRANTS))
                },
            }
        )
    groups.sort(key=lambda x: -x["customers"])
    return {"abc": abc, "quadrant": quadrant, "value": value, "groups": groups, "engagement_cut": engagement_cut}


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


def headline_group(groups: list[dict], currency: str) -> dict | None:
    """The group the matrix's single figures describe: the run's currency, CLV before revenue; else the largest."""
    ranked = sorted(groups, key=lambda g: (g["currency"] != currency, g["basis"] != "clv", -g["customers"]))
    return ranked[0] if ranked else None


# ---- the executor ----


@contextlib.contextmanager
def phase(run: dict, name: str) -> Iterator[None]:
    """Seconds per phase of a run, reported in its result (`timings`)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        run["timings"][name] = round(run["timings"].get(name, 0) + time.perf_counter() - started, 3)


class RunExecutor:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        reporting_currency: str,
        schedule_interval_s: float = 0,
        schedule_kinds: tuple[str, ...] = KINDS,
        launcher: jobs.Launcher | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.outbox = outbox
        self.reporting_currency = reporting_currency
        self.schedule_interval_s = schedule_interval_s
        self.schedule_kinds = schedule_kinds
        self._lock = asyncio.Lock()
        # The service's runtime holds the runs it launches (and cancels them at shutdown); a benchmark has its own.
        self.jobs = launcher or jobs.Launcher()

    async def create(
        self,
        session: AsyncSession,
        kind: str,
        *,
        scheme: str | None,
        currency: str | None,
        as_of: datetime | None,
        trigger: str = "api",
        k: int | None = None,
    ) -> dict:
        if kind == "rfm":
            await get_scheme(session, scheme or "default")
        if k is not None and kind != "clustering":
            raise NotForKind("`k` applies to clustering runs only")
        run_scheme = (scheme or "default") if kind == "rfm" else None
        params: dict[str, str | int | None] = {"scheme": run_scheme, "currency": currency or self.reporting_currency}
        if kind == "clustering":
            params["k"] = k
        family = family_of(kind, run_scheme)
        # One unfinished run per family (409 naming it): runs are heavy, a key must not queue them without limit.
        # The partial unique index settles a race between two requests (the loser's INSERT fails: 409 too).
        unfinished = await repository.unfinished(session, family)
        if unfinished is not None:
            raise jobs.in_progress(f"{kind} run", family, unfinished.run_id, unfinished.status)
        try:
            async with session.begin_nested():
                row = await repository.insert_run(
                    session,
                    uuid.uuid4(),
                    kind=kind,
                    family=family,
                    params=params,
                    as_of=as_of or datetime.now(UTC),
                    trigger=trigger,
                )
        except sa.exc.IntegrityError:
            raise jobs.JobInProgress(f"another {kind} run for {family} was created at the same moment") from None
        return dict(row)

    def launch(self, run_id: uuid.UUID) -> None:
        """Start the run in the background (after the creating transaction has committed)."""
        self.jobs.launch(self.execute(run_id), name=f"segmentation-run-{run_id}")

    async def launch_committed(self, run_id: uuid.UUID) -> None:
        """`launch` as a response background task (async, so it runs on the event loop)."""
        self.launch(run_id)

    async def launch_queued(self) -> None:
        """Launch the runs left queued (at start: whichever replica claims one first runs it)."""
        async with self.session_factory.begin() as session:
            queued = await repository.queued(session)
        for run_id in queued:
            self.launch(run_id)

    async def wait_idle(self) -> None:
        """Until the launched runs have finished (tests)."""
        await self.jobs.wait()

    async def recover_periodically(self) -> None:
        """Runs whose replica died (lease lapsed) fail with "interrupted" (a run is not restartable: its result
        rows are keyed by run); queued runs nobody launched (their replica died before) are launched here."""
        while True:
            try:
                async with self.session_factory.begin() as session:
                    stale = await jobs.expired(session, segmentation_run, id_column="run_id")
                    for run_id, status in stale:
                        if status == "running" and await jobs.fail_interrupted(
                            session, segmentation_run, run_id, id_column="run_id"
                        ):
                            log.warning("segmentation run %s interrupted: its replica stopped", run_id)
                            await repository.discard_results(session, run_id)
                for run_id, status in stale:
                    if status == "queued":
                        self.launch(run_id)
            except Exception:
                log.exception("recovering segmentation runs failed; trying again")
            await asyncio.sleep(jobs.LEASE_S / 3)

    async def schedule_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.schedule_interval_s)
            try:
                for kind in self.schedule_kinds:
                    async with self.session_factory.begin() as session:
                        busy = await repository.unfinished(session, family_of(kind, None))
                        if busy:
                            continue
                        try:
                            run = await self.create(session, kind, scheme=None, currency=None, as_of=None, trigger="schedule")
                        except jobs.JobInProgress:
                            continue  # another replica scheduled it at the same moment
                    self.launch(run["run_id"])
            except Exception:
                log.exception("scheduling segmentation runs failed; trying again next interval")

    async def _progress(self, run_id: uuid.UUID, progress: float, **fields: Any) -> None:
        async with self.session_factory.begin() as session:
            await repository.set_progress(session, run_id, progress, **fields)

    async def execute(self, run_id: uuid.UUID) -> None:
        async with self._lock:
            async with self.session_factory.begin() as session:
                if not await jobs.claim(session, segmentation_run, run_id, id_column="run_id"):
                    return  # another replica runs it (or it is finished)
            try:
                async with jobs.hold(self.session_factory, segmentation_run, run_id, id_column="run_id"):
                    await self._progress(run_id, 0.0, started_at=datetime.now(UTC))
                    async with self.session_factory() as session:
                        run = await get_run(session, run_id)
                    run["timings"] = {}
                    await {"rfm": self._rfm, "clustering": self._clustering, "tiers": self._tiers}[run["kind"]](run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("segmentation run %s failed", run_id)
                await self._progress(
                    run_id, 1.0, status="failed", error=f"{type(exc).__name__}: {exc}"[:500], finished_at=datetime.now(UTC)
                )
                async with self.session_factory.begin() as session:
                    await repository.discard_results(session, run_id)

    async def _load(self, run: dict, with_value: bool = False) -> Aggregates:
        with phase(run, "load_s"):
            async with self.session_factory() as session, session.begin():
                data = await load_aggregates(session, run["params"]["currency"], with_value)
        await self._progress(run["run_id"], 0.2)
        return data

    def _write_results(self, run: dict, writes: list[ResultsWrite]) -> asyncio.Future:
        """The run's per-customer results (run_result), copied in on a connection of their own while the run's
        transaction diffs the memberships (Postgres works on both at once: two backends). They commit first, but
        nothing reads them before the run has succeeded (reads name a succeeded run); if the run fails they are
        deleted (`execute`, and recovery for a replica that died)."""

        async def write() -> None:
            with phase(run, "write_results_s"):
                async with self.session_factory() as session, session.begin():
                    for columns, values, n in writes:
                        await copy_in(session, "run_result", "segmentation", columns, values, n)

        return asyncio.ensure_future(write())

    async def _finish(
        self,
        session: AsyncSession,
        run: dict,
        families: list[str],
        result: dict,
        summaries: dict[uuid.UUID, dict],
        assigned: tuple[np.ndarray, np.ndarray],
        writes: list[ResultsWrite],
    ) -> None:
        """Membership diff + events, segment summaries with movement, rule refresh, the run's result.
        `assigned`: (customer ids, segment ids) as 16-byte arrays, one pair per membership the run decided;
        `writes`: the run's results (`_write_results`, beside the diff), committed before the run succeeds."""
        results = self._write_results(run, writes)
        try:
            await self._finish_with(session, run, families, result, summaries, assigned)
            await results
        except BaseException:
            # Settled before the failure goes on: a failed run's results are deleted after they committed.
            await asyncio.gather(results, return_exceptions=True)
            raise
        await self._succeed(session, run, result)

    async def _finish_with(
        self,
        session: AsyncSession,
        run: dict,
        families: list[str],
        result: dict,
        summaries: dict[uuid.UUID, dict],
        assigned: tuple[np.ndarray, np.ndarray],
    ) -> None:
        now = datetime.now(UTC)
        segments = await run_diff.scope_segments(session, families)
        with phase(run, "membership_diff_s"):
            moved = await self.diff(session, run, now, segments, assigned)
        # The memberships were just copied in, so the planner's statistics still describe the table before them
        # and the rule refresh below (rules on segment membership read them) would probe a million rows one index
        # lookup at a time; hash (or merge) joins do it in one pass.
        await repository.tune_for_run(session, hash_joins=True)
        scope = [s.segment_id for s in segments]
        for segment_id in scope:
            summary = summaries.get(segment_id, {"size": 0, "revenue": 0.0, "revenue_share": 0.0, "average_value": 0.0})
            change = moved.get(segment_id, {"entered": 0, "left": 0})
            summary.update(change, net=change["entered"] - change["left"], run_id=str(run["run_id"]))
            summaries[segment_id] = summary
        await repository.write_summaries(session, run["run_id"], summaries)
        await notify_relay(session, self.outbox)
        result["segments"] = [{"segment_id": str(k), **v} for k, v in summaries.items()]
        result["membership_changes"] = sum(c["entered"] + c["left"] for c in moved.values())
        with phase(run, "rule_refresh_s"):
            await refresh_rule_segments(session, self.outbox, self.reporting_currency, run_id=run["run_id"])
        with phase(run, "prune_s"):
            # This run is marked succeeded only after (`_succeed`): it is the KEEP_RESULTS-th whose results stay.
            await repository.prune_results(session, run["family"], KEEP_RESULTS - 1)

    async def _succeed(self, session: AsyncSession, run: dict, result: dict) -> None:
        now = datetime.now(UTC)
        result["timings"] = run["timings"]
        await repository.succeed(session, run["run_id"], result)
        # In the run's transaction: copies of a customer's segmentation (the gateway's view) refresh from it.
        await self.outbox.add(
            session,
            SEGMENTATION_EVENTS,
            [
                Envelope.wrap(
                    SegmentationRunCompleted(run_id=run["run_id"], kind=run["kind"], family=run["family"], finished_at=now),
                    source=SOURCE,
                    subject=None,
                )
            ],
        )

    async def diff(
        self,
        session: AsyncSession,
        run: dict,
        now: datetime,
        scope: list[run_diff.Segment],
        assigned: tuple[np.ndarray, np.ndarray],
    ) -> dict[uuid.UUID, dict[str, int]]:
        """The membership diff with its events (the benchmark times its predecessor in its place)."""
        return await run_diff.apply(
            session, self.outbox, now=now, run_id=run["run_id"], scope=scope, customer_ids=assigned[0], segment_ids=assigned[1]
        )

    async def _upsert_segments(self, session: AsyncSession, segments: list[dict]) -> list[uuid.UUID]:
        ids = [segment_id_for(s["key"]) for s in segments]
        await repository.upsert_segments(session, ids, segments)
        return ids

    @staticmethod
    def _money_summary(size: np.ndarray, revenue: np.ndarray) -> list[dict]:
        total = float(revenue.sum())
        return [
            {
                "size": int(n),
                "revenue": round(float(v), 4),
                "revenue_share": round(float(v) / total, 6) if total > 0 else 0.0,
                "average_value": round(float(v) / int(n), 4) if n else 0.0,
            }
            for n, v in zip(size, revenue, strict=True)
        ]

    async def _rfm(self, run: dict) -> None:
        async with self.session_factory() as session:
            scheme = await get_scheme(session, run["params"]["scheme"])
        data = await self._load(run)
        with phase(run, "compute_s"):
            computed = await asyncio.to_thread(compute_rfm, data.rows, run["as_of"].timestamp(), scheme["segments"])
        await self._progress(run["run_id"], 0.5)
        family = run["family"]
        segments = [
            {
                "key": f"{family}:{s['key']}",
                "kind": "rfm",
                "family": family,
                "name": s["name"],
                "definition": {"scheme": scheme["key"], "r": s["r"], "f": s["f"]},
            }
            for s in scheme["segments"]
        ]
        async with self.session_factory() as session, session.begin():
            ids = await self._upsert_segments(session, segments)
            id_bytes = np.array([uuid_bytes(i) for i in ids], dtype="V16")
            writes = [
                (
                    [
                        ("run_id", "uuid"),
                        ("customer_id", "uuid"),
                        ("segment_id", "uuid"),
                        ("r", "int2"),
                        ("f", "int2"),
                        ("m", "int2"),
                        ("monetary", "float8"),
                    ],
                    {
                        "run_id": uuid_bytes(run["run_id"]),
                        "customer_id": data.rows["customer_id"],
                        "segment_id": id_bytes[computed["segment"]],
                        "r": computed["r"],
                        "f": computed["f"],
                        "m": computed["m"],
                        "monetary": data.rows["monetary"],
                    },
                    data.n,
                )
            ]
            summaries = dict(zip(ids, self._money_summary(computed["size"], computed["revenue"]), strict=True))
            for sid, seg in zip(ids, segments, strict=True):
                summaries[sid]["key"], summaries[sid]["name"] = seg["key"], seg["name"]
            await self._finish(
                session,
                run,
                [family],
                {"customers": data.n, "scheme": scheme["key"]},
                summaries,
                (data.rows["customer_id"], id_bytes[computed["segment"]]),
                writes,
            )

    async def _clustering(self, run: dict) -> None:
        async with self.session_factory() as session:
            previous_rows = await repository.definitions(session, "cluster")
        previous = {d["label"]: d["centroid"] for d in previous_rows if d and "centroid" in d}
        data = await self._load(run)
        with phase(run, "compute_s"):
            features = compute_features(data.rows, run["as_of"].timestamp())
            result = await asyncio.to_thread(clustering.cluster, features, previous, 0, run["params"].get("k"))
        await self._progress(run["run_id"], 0.5)
        labels = sorted(result.clusters)
        segments = [
            {
                "key": f"cluster:{label}",
                "kind": "cluster",
                "family": "cluster",
                "name": f"Cluster {label}: {result.clusters[label]['description']}",
                "description": result.clusters[label]["description"],
                "definition": {
                    "label": label,
                    "centroid": [result.clusters[label]["centroid"][f] for f in clustering.FEATURES],
                    "features": clustering.FEATURES,
                },
            }
            for label in labels
        ]
        async with self.session_factory() as session, session.begin():
            ids = await self._upsert_segments(session, segments)
            position = {label: i for i, label in enumerate(labels)}
            lookup = np.zeros(max(labels, default=0) + 1, dtype=np.int64)
            for label, i in position.items():
                lookup[label] = i
            id_bytes = np.array([uuid_bytes(i) for i in ids], dtype="V16")
            index = lookup[result.labels] if data.n else np.empty(0, dtype=np.int64)
            writes = [
                (
                    [("run_id", "uuid"), ("customer_id", "uuid"), ("segment_id", "uuid"), ("monetary", "float8")],
                    {
                        "run_id": uuid_bytes(run["run_id"]),
                        "customer_id": data.rows["customer_id"],
                        "segment_id": id_bytes[index] if data.n else id_bytes[:0],
                        "monetary": data.rows["monetary"],
                    },
                    data.n,
                )
            ]
            size, revenue = rfm.segment_summary(index, data.rows["monetary"], len(labels))
            summaries = dict(zip(ids, self._money_summary(size, revenue), strict=True))
            for sid, label in zip(ids, labels, strict=True):
                summaries[sid].update(key=f"cluster:{label}", name=f"Cluster {label}", **result.clusters[label])
            await self._finish(
                session,
                run,
                ["cluster"],
                {
                    "customers": data.n,
                    "k": result.k,
                    "k_fixed": result.fixed,
                    "k_requested": run["params"].get("k"),
                    "k_criterion": "fixed by the request" if result.fixed else result.criterion,
                    "silhouette": result.silhouette,
                    "silhouette_by_k": result.candidates,
                    "smallest_share_by_k": result.smallest_share,
                    "features": clustering.FEATURES,
                },
                summaries,
                (data.rows["customer_id"], id_bytes[index] if data.n else id_bytes[:0]),
                writes,
            )

    async def _tiers(self, run: dict) -> None:
        data = await self._load(run, with_value=True)
        with phase(run, "compute_s"):
            computed = await asyncio.to_thread(compute_tiers, data.rows, run["as_of"].timestamp(), data.currencies)
        await self._progress(run["run_id"], 0.5)
        segments = [{"key": f"abc:{c}", "kind": "abc", "family": "abc", "name": f"Class {c}"} for c in tiers.ABC_CLASSES]
        segments += [
            {"key": f"portfolio:{q}", "kind": "portfolio", "family": "portfolio", "name": q.replace("-", " ").capitalize()}
            for q in tiers.QUADRANTS
        ]
        segments += [
            {"key": f"clv-tier:{t}", "kind": "value_tier", "family": "clv-tier", "name": f"CLV tier {t}"} for t in data.tiers
        ]
        monetary = data.rows["monetary"]
        async with self.session_factory() as session, session.begin():
            ids = await self._upsert_segments(session, segments)
            id_bytes = np.array([uuid_bytes(i) for i in ids], dtype="V16")
            columns = [("run_id", "uuid"), ("customer_id", "uuid"), ("segment_id", "uuid"), ("monetary", "float8")]
            run_bytes = uuid_bytes(run["run_id"])
            with_tier = data.rows["tier"] > 0
            offsets = {"abc": 0, "portfolio": len(tiers.ABC_CLASSES), "clv-tier": len(tiers.ABC_CLASSES) + len(tiers.QUADRANTS)}
            parts = [
                ("abc", computed["abc"].astype(np.int64), np.ones(data.n, dtype=bool)),
                ("portfolio", computed["quadrant"].astype(np.int64), np.ones(data.n, dtype=bool)),
                ("clv-tier", data.rows["tier"].astype(np.int64) - 1, with_tier),
            ]
            summaries: dict[uuid.UUID, dict] = {}
            assigned_customers, assigned_segments, writes = [], [], []
            for family, index, mask in parts:
                global_index = index[mask] + offsets[family]
                assigned_customers.append(data.rows["customer_id"][mask])
                assigned_segments.append(id_bytes[global_index] if len(global_index) else id_bytes[:0])
                writes.append(
                    (
                        columns,
                        {
                            "run_id": run_bytes,
                            "customer_id": assigned_customers[-1],
                            "segment_id": assigned_segments[-1],
                            "monetary": monetary[mask],
                        },
                        int(mask.sum()),
                    )
                )
                size, revenue = rfm.segment_summary(global_index, monetary[mask], len(ids))
                for i, s in enumerate(self._money_summary(size, revenue)):
                    if segments[i]["family"] == family:
                        summaries[ids[i]] = {**s, "key": segments[i]["key"], "name": segments[i]["name"]}
            # A quadrant's average value is on the value axis it was cut on (not revenue in the run's currency):
            # per value group, and for the headline group (the run's currency, CLV first) as `average_value`.
            headline = headline_group(computed["groups"], run["params"]["currency"])
            for i, seg in enumerate(segments):
                if seg["family"] == "portfolio":
                    q = seg["key"].split(":", 1)[1]
                    summaries[ids[i]]["average_value"] = headline["quadrants"][q]["average_value"] if headline else None
                    summaries[ids[i]]["value_groups"] = [
                        {"currency": g["currency"], "basis": g["basis"], **g["quadrants"][q]} for g in computed["groups"]
                    ]
            await self._finish(
                session,
                run,
                TIERS_FAMILIES,
                {
                    "customers": data.n,
                    "value_threshold": headline["value_threshold"] if headline else None,
                    "value_currency": headline["currency"] if headline else None,
                    "value_basis": headline["basis"] if headline else None,
                    "value_thresholds": [
                        {k: g[k] for k in ("currency", "basis", "customers", "value_threshold")} for g in computed["groups"]
                    ],
                    "engagement_threshold": computed["engagement_cut"],
                    "value_axis": "per customer in its own currency: the CLV the clv service published, else revenue to "
                    "date in the currency it spent most in; high = at or above the median of its "
                    "currency and basis, and above zero",
                    "engagement_axis": "mean of the R and F scores",
                },
                summaries,
                (np.concatenate(assigned_customers), np.concatenate(assigned_segments)),
                writes,
            )


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> dict:
    row = await repository.run(session, run_id)
    if row is None:
        raise RunNotFound(f"no segmentation run {run_id}")
    return dict(row)
