"""Segmentation on 1M customers: RFM + named segments and clustering, pure compute and end to end in Postgres.

Synthetic per-customer aggregates (recency over two years, geometric frequency, log-normal spend) are scored
by the service's own functions and, in the same run, by the `rfm` package (`RFM.calculate_rfm_score`, the
peer; installed from bench/requirements-segmentation.txt). Agreement is checked: a customer whose value is
unique in its dimension must get exactly the peer's score; inside a tie group the peer splits equal values
across scores by row order (`rank(method="first")`) while the service gives the whole group the score of its
mean rank, so there the service's score must lie within the peer's scores for that group. Any violation raises.
The peer's named segments (`find_segments`, a row loop) are timed on a sample and scaled to the population.

End to end: the same customers are loaded into `customer_aggregate`/`purchase_summary` of a fresh database
and complete runs are timed through the run executor (binary COPY out, compute, binary COPY of the results,
set-based membership diff with one outbox event per change): a first run (everyone enters a segment) and a
second run on unchanged data (no changes). Goals: P5, RFM + named segments ≤ 2 s, clustering ≤ 15 s (compute);
issue 14, a first RFM run end to end (1M memberships opened, 1M outbox events) ≤ 10 s. Each is printed against
its goal.
"""

import argparse
import asyncio
import importlib.util
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from bench import harness
from shared.db import make_engine, make_session_factory
from shared.messaging.outbox import Outbox

from segmentation.analytics import clustering
from segmentation.runs.binary_copy import copy_in
from segmentation.runs.repository import AGGREGATE_COLUMNS
from segmentation.runs.service import RunExecutor, compute_features, compute_rfm, compute_tiers
from segmentation.segments import membership
from segmentation.tables import messaging

DAY = 86400.0
E2E_GOALS_S = {"rfm_first": 10.0}  # issue 14: end-to-end first RFM run on 1M customers
AS_OF = 1_798_761_600.0  # 2027-01-01T00:00:00Z
MIGRATION = (
    Path(__file__).resolve().parents[1] / "services/segmentation/segmentation/migrations/versions/"
    "2026_11_30_0002_portfolio_analysis.py"
)


def default_scheme() -> list[dict]:
    spec = importlib.util.spec_from_file_location("segmentation_0002", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [{"key": k, "name": n, "r": r, "f": f} for k, n, r, f in module.DEFAULT_SCHEME]


def synthetic(n: int, seed: int) -> np.ndarray:
    """Three behaviours mixed (loyal, occasional, lapsed), so clustering has structure to find."""
    rng = np.random.default_rng(seed)
    rows = np.zeros(
        n, dtype=[(name, "f8" if t == "float8" else ("i4" if t == "int4" else "V16")) for name, t in AGGREGATE_COLUMNS]
    )
    rows["customer_id"] = np.frombuffer(rng.bytes(16 * n), dtype="V16")
    persona = rng.choice(3, n, p=[0.2, 0.5, 0.3])
    recency_days = np.array([30.0, 150.0, 500.0])[persona] * rng.uniform(0.05, 1.5, n)
    rows["last_purchase"] = AS_OF - recency_days * DAY - rng.uniform(0, DAY, n)
    rows["frequency"] = rng.geometric(np.array([0.12, 0.4, 0.7])[persona])
    rows["monetary"] = np.round(rng.lognormal(np.array([4.8, 3.8, 3.4])[persona], 0.6) * rows["frequency"], 2)
    rows["first_seen"] = rows["last_purchase"] - rng.uniform(0, 900 * DAY, n) * np.array([1.0, 0.5, 0.3])[persona]
    rows["touchpoints"] = rng.poisson(np.array([6.0, 2.0, 0.5])[persona])
    rows["clv"] = np.where(rng.random(n) < 0.7, np.round(rng.lognormal(5, 1, n), 2), np.nan)
    return rows


# The reference for a run's membership diff: the set-based statement the service used before the diff moved to
# numpy and binary COPY (segments/run_diff.py). It anti-joins the run's results (run_result) with the open
# memberships, inserts with ON CONFLICT and concatenates each event's JSON in SQL. `--reference-rounds N`
# times complete first RFM runs with it and with the service's diff alternately, on the same data from the
# same empty state, so the ratio holds on a busy machine where absolute figures do not.
REFERENCE_RUN_DIFF = sa.text(
    """
WITH left_rows AS (
    UPDATE segmentation.segment_membership m
       SET left_at = CAST(:now AS timestamptz), left_run_id = CAST(:run_id AS uuid), updated_at = now()
    WHERE m.segment_id = ANY(CAST(:scope AS uuid[])) AND m.left_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM segmentation.run_result x
                      WHERE x.run_id = CAST(:run_id AS uuid) AND x.customer_id = m.customer_id AND x.segment_id = m.segment_id)
    RETURNING m.customer_id, m.segment_id, 'left'::text AS change
), entered_rows AS (
    INSERT INTO segmentation.segment_membership (segment_id, customer_id, entered_at, entered_run_id)
    SELECT x.segment_id, x.customer_id, CAST(:now AS timestamptz), CAST(:run_id AS uuid) FROM segmentation.run_result x
    WHERE x.run_id = CAST(:run_id AS uuid) AND NOT EXISTS (
        SELECT 1 FROM segmentation.segment_membership m
        WHERE m.segment_id = x.segment_id AND m.customer_id = x.customer_id AND m.left_at IS NULL)
    ORDER BY x.segment_id, x.customer_id
    ON CONFLICT (segment_id, customer_id) WHERE left_at IS NULL DO NOTHING
    RETURNING customer_id, segment_id, 'entered'::text AS change
)"""
    + membership.PUBLISH_AND_COUNT
)


class ReferenceExecutor(RunExecutor):
    """The executor with the reference diff in place of the service's, and the results written before it (the
    reference statement reads them; the service writes them alongside its diff)."""

    def _write_results(self, run, writes):
        self._written = super()._write_results(run, writes)
        return self._written

    async def diff(self, session, run, now, scope, assigned):
        await self._written
        await session.execute(_sql("SET LOCAL work_mem = '256MB'"))
        await session.execute(_sql("SET LOCAL enable_nestloop = off"))
        rows = (
            await session.execute(
                REFERENCE_RUN_DIFF,
                {**membership.publish_params(self.outbox, now, run["run_id"], scope), "scope": [s.segment_id for s in scope]},
            )
        ).all()
        return membership.movement(rows)


def timed(fn, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def check_agreement(name: str, values: np.ndarray, ours: np.ndarray, peer: np.ndarray) -> dict:
    """Exact where the value is unique; within the peer's scores for the tie group otherwise. Raises if not."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(values)])
    group = np.empty(len(values), dtype=np.int64)
    group[order] = np.repeat(np.arange(len(starts)), sizes)
    unique = sizes[group] == 1
    if not (ours[unique] == peer[unique]).all():
        raise AssertionError(f"{name}: {(ours[unique] != peer[unique]).sum()} customers with a unique value disagree")
    low = np.full(len(starts), 9)
    high = np.zeros(len(starts))
    np.minimum.at(low, group, peer)
    np.maximum.at(high, group, peer)
    if not ((ours >= low[group]) & (ours <= high[group])).all():
        raise AssertionError(f"{name}: a tied customer's score lies outside the peer's scores for its tie group")
    return {"exact_agreement": round(float((ours == peer).mean()), 4), "tied_customers": round(float((~unique).mean()), 4)}


def peer_scores(rows: np.ndarray):
    import pandas as pd
    from rfm.rfm import RFM

    frame = pd.DataFrame(
        {
            "customer_id": np.arange(len(rows)),
            "recency": np.floor((AS_OF - rows["last_purchase"]) / DAY).astype(np.int64),
            "frequency": rows["frequency"].astype(np.int64),
            "monetary_value": rows["monetary"],
        }
    )
    peer = RFM(frame, "customer_id", "date", "amount", automated=False)
    return peer, frame


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench segmentation", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--peer-segment-sample",
        type=int,
        default=50_000,
        help="customers the peer's row-by-row find_segments is timed on (then scaled)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-end-to-end", action="store_true", help="pure compute only (no Postgres)")
    parser.add_argument("--end-to-end-only", action="store_true", help="skip the pure-compute comparison")
    parser.add_argument(
        "--reference-rounds",
        type=int,
        default=1,
        metavar="ROUNDS",
        help="time complete first RFM runs with the previous (SQL) membership diff and with the "
        "service's alternately, ROUNDS times each, from the same empty state; print the ratio "
        "(0: skip)",
    )
    args = parser.parse_args(argv)
    n = args.customers
    scheme = default_scheme()
    rows = synthetic(n, args.seed)
    print(f"{n:,} customers")

    if args.end_to_end_only:
        with harness.servers() as (server_url, _), harness.database(server_url, ["segmentation"]) as url:
            return {
                "benchmark": "segmentation",
                "customers": n,
                "end_to_end": asyncio.run(_end_to_end(url, rows, args.reference_rounds)),
            }
    rfm_s, ours = timed(lambda: compute_rfm(rows, AS_OF, scheme))
    print(f"ours  RFM scores + named segments + per-segment summary: {rfm_s:.3f} s (goal ≤ 2)")

    peer, frame = peer_scores(rows)
    peer_s, scored = timed(lambda: peer.calculate_rfm_score(frame.copy()), repeat=1)
    scored = scored.sort_values("customer_id")
    agreement = {
        "r": check_agreement("R", -frame["recency"].to_numpy(), ours["r"], scored["r"].to_numpy().astype(np.int8)),
        "f": check_agreement("F", rows["frequency"], ours["f"], scored["f"].to_numpy().astype(np.int8)),
        "m": check_agreement("M", rows["monetary"], ours["m"], scored["m"].to_numpy().astype(np.int8)),
    }
    sample = scored.sample(min(args.peer_segment_sample, n), random_state=args.seed).copy()
    sample_s, _ = timed(lambda: peer.find_segments(sample.copy()), repeat=1)
    peer_segments_s = sample_s * n / len(sample)
    peer_total_s = peer_s + peer_segments_s
    lookup = np.zeros((5, 5), dtype=np.int16)
    for i, s in enumerate(scheme):
        lookup[s["r"][0] - 1 : s["r"][1], s["f"][0] - 1 : s["f"][1]] = i
    peer_named = lookup[scored["r"].to_numpy().astype(int) - 1, scored["f"].to_numpy().astype(int) - 1]
    segment_agreement = float((peer_named == ours["segment"]).mean())
    print(f"peer  rfm.RFM.calculate_rfm_score (1 pass, pandas qcut): {peer_s:.3f} s")
    print(f"peer  rfm.RFM.find_segments: {sample_s:.3f} s on {len(sample):,} → {peer_segments_s:.1f} s scaled to {n:,}")
    print(f"agreement: {agreement}; named segments (default scheme on the peer's R,F): {segment_agreement:.4f}")
    print(f"speed ratio: scores {peer_s / rfm_s:.1f}x, scores + named segments {peer_total_s / rfm_s:.1f}x")

    features_s, features = timed(lambda: compute_features(rows, AS_OF), repeat=1)
    cluster_s, clusters = timed(lambda: clustering.cluster(features), repeat=1)
    print(
        f"ours  clustering: features {features_s:.3f} s + k-means {cluster_s:.3f} s (goal ≤ 15) "
        f"(k={clusters.k}, silhouette {clusters.silhouette}, by k {clusters.candidates})"
    )
    for label, c in sorted(clusters.clusters.items()):
        print(f"    cluster {label}: {int((clusters.labels == label).sum()):>8,}  {c['description']}")
    tiers_s, _ = timed(lambda: compute_tiers(rows, AS_OF))
    print(f"ours  ABC + portfolio quadrants: {tiers_s:.3f} s")

    figures = {
        "benchmark": "segmentation",
        "customers": n,
        "rfm_compute_s": round(rfm_s, 4),
        "rfm_goal_s": 2.0,
        "peer": "rfm==1.0.9",
        "peer_scores_s": round(peer_s, 3),
        "peer_segments_scaled_s": round(peer_segments_s, 2),
        "speedup_scores": round(peer_s / rfm_s, 1),
        "speedup_scores_and_segments": round(peer_total_s / rfm_s, 1),
        "agreement": agreement,
        "named_segment_agreement": round(segment_agreement, 4),
        "clustering_compute_s": round(features_s + cluster_s, 3),
        "clustering_goal_s": 15.0,
        "k": clusters.k,
        "silhouette": clusters.silhouette,
        "tiers_compute_s": round(tiers_s, 4),
    }
    if rfm_s > 2.0 or features_s + cluster_s > 15.0:
        print("WARNING: a P5 goal was missed on this machine")
    if not args.no_end_to_end:
        with harness.servers() as (server_url, _), harness.database(server_url, ["segmentation"]) as url:
            figures["end_to_end"] = asyncio.run(_end_to_end(url, rows, args.reference_rounds))
    return figures


async def _end_to_end(url: str, rows: np.ndarray, reference_rounds: int = 0) -> dict:
    engine = make_engine(url, pool_size=4)
    sessions = make_session_factory(engine)
    n = len(rows)
    try:
        started = time.perf_counter()
        async with sessions.begin() as session:
            await session.execute(
                _sql("""CREATE UNLOGGED TABLE segmentation.bench_staging (customer_id uuid,
                last_purchase float8, frequency int4, monetary float8, first_seen float8, touchpoints int4, clv float8)""")
            )
            columns = [(c, t) for c, t in AGGREGATE_COLUMNS if c != "tier"]
            await copy_in(session, "bench_staging", "segmentation", columns, {c: rows[c] for c, _ in columns}, n)
            await session.execute(
                _sql("""
                INSERT INTO segmentation.customer_aggregate (customer_id, order_count, first_purchase_at,
                    last_purchase_at, touchpoint_count, first_touch_at, clv, clv_currency)
                SELECT customer_id, frequency, to_timestamp(first_seen), to_timestamp(last_purchase), touchpoints,
                       CASE WHEN touchpoints > 0 THEN to_timestamp(first_seen) END,
                       CASE WHEN clv = 'NaN' THEN NULL ELSE clv::numeric END, 'EUR'
                FROM segmentation.bench_staging""")
            )
            await session.execute(
                _sql("""
                INSERT INTO segmentation.purchase_summary (customer_id, currency, order_count, total_spend,
                    first_purchase_at, last_purchase_at)
                SELECT customer_id, 'EUR', frequency, monetary::numeric, to_timestamp(first_seen),
                       to_timestamp(last_purchase) FROM segmentation.bench_staging""")
            )
            await session.execute(_sql("DROP TABLE segmentation.bench_staging"))
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(_sql("VACUUM ANALYZE segmentation.customer_aggregate"))
            await conn.execute(_sql("VACUUM ANALYZE segmentation.purchase_summary"))
        print(f"loaded {n:,} customers into Postgres in {time.perf_counter() - started:.1f} s (setup, not measured)")
        async with sessions() as session:
            max_wal = (await session.execute(_sql("SHOW max_wal_size"))).scalar_one()
        print(f"server: max_wal_size {max_wal} (a run writing more WAL than ~half of it gets a checkpoint midway)")
        executor = RunExecutor(sessions, Outbox(messaging, "segmentation"), "EUR")
        out = {}
        if reference_rounds:
            out["reference"] = await _reference(sessions, reference_rounds, len(rows))
        for label, kind in [("rfm_first", "rfm"), ("rfm_unchanged", "rfm"), ("clustering_first", "clustering")]:
            async with sessions.begin() as session:
                run = await executor.create(session, kind, scheme=None, currency="EUR", as_of=datetime.fromtimestamp(AS_OF, UTC))
            before = await harness.server_cost(sessions)
            started, cpu_started = time.perf_counter(), time.process_time()
            await executor.execute(run["run_id"])
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            cost = harness.cost_since(before, await harness.server_cost(sessions))
            async with sessions() as session:
                done = (
                    await session.execute(
                        _sql("SELECT status, error, result FROM segmentation.segmentation_run WHERE run_id = :id"),
                        {"id": run["run_id"]},
                    )
                ).one()
            if done.status != "succeeded":
                raise AssertionError(f"{kind} run failed: {done.error}")
            assigned = sum(s["size"] for s in done.result["segments"])
            if assigned != n:
                raise AssertionError(f"{kind} run assigned {assigned} of {n} customers")
            changes = done.result["membership_changes"]
            goal = E2E_GOALS_S.get(label)
            verdict = f"  goal ≤ {goal:g} s: {'met' if seconds <= goal else 'MISSED'}" if goal else ""
            print(
                f"end to end {label:<18} {seconds:7.2f} s  ({changes:,} membership changes → outbox events)"
                f"{verdict}  phases: {done.result['timings']}"
            )
            print(
                f"    cost: Python process CPU {cpu:.2f} s, Postgres backends CPU {cost['postgres_cpu_s']} s, "
                f"WAL {cost['wal_mb']} MB, checkpoints during the run {cost['checkpoints']}"
            )
            out[f"{label}_s"] = round(seconds, 2)
            out[f"{label}_cost"] = {"python_cpu_s": round(cpu, 2), **cost}
            out[f"{label}_phases"] = done.result["timings"]
            out[f"{label}_membership_changes"] = changes
        return out
    finally:
        await engine.dispose()


async def _reference(sessions, rounds: int, n: int) -> dict:
    """First RFM runs with the reference diff and with the service's, alternately, each from the same empty
    state (no memberships, outbox, results or runs; a checkpoint first, so each pays the same full-page writes)."""
    outbox = Outbox(messaging, "segmentation")
    executors = {"reference": ReferenceExecutor(sessions, outbox, "EUR"), "service": RunExecutor(sessions, outbox, "EUR")}
    runs: dict[str, list[dict]] = {name: [] for name in executors}
    for _ in range(rounds):
        for name, executor in executors.items():
            await _reset(sessions)
            async with sessions.begin() as session:
                run = await executor.create(session, "rfm", scheme=None, currency="EUR", as_of=datetime.fromtimestamp(AS_OF, UTC))
            before = await harness.server_cost(sessions)
            started, cpu_started = time.perf_counter(), time.process_time()
            await executor.execute(run["run_id"])
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            cost = harness.cost_since(before, await harness.server_cost(sessions))
            async with sessions() as session:
                done = (
                    await session.execute(
                        _sql("SELECT status, error, result FROM segmentation.segmentation_run WHERE run_id = :id"),
                        {"id": run["run_id"]},
                    )
                ).one()
                events = (await session.execute(_sql("SELECT count(*) FROM segmentation.outbox"))).scalar_one()
            if done.status != "succeeded" or done.result["membership_changes"] != n or events != n + 1:
                raise AssertionError(
                    f"{name} first run: {done.status} {done.error}, "
                    f"{done.result and done.result['membership_changes']} changes, {events} events"
                )
            timings = done.result["timings"]
            runs[name].append(
                {"s": round(seconds, 2), "diff_s": timings["membership_diff_s"], "python_cpu_s": round(cpu, 2), **cost}
            )
            print(
                f"reference comparison: {name:<9} first RFM run {seconds:6.2f} s (diff "
                f"{timings['membership_diff_s']:.2f} s)  Python CPU {cpu:.2f} s, Postgres CPU "
                f"{cost['postgres_cpu_s']} s, WAL {cost['wal_mb']} MB, checkpoints {cost['checkpoints']}",
                flush=True,
            )
    await _reset(sessions)
    best = {name: min(r["s"] for r in v) for name, v in runs.items()}
    ratio = best["reference"] / best["service"]
    print(
        f"reference comparison: best of {rounds}: reference {best['reference']:.2f} s, service "
        f"{best['service']:.2f} s → {ratio:.2f}x"
    )
    return {"runs": runs, "reference_s": best["reference"], "service_s": best["service"], "ratio": round(ratio, 2)}


async def _reset(sessions) -> None:
    async with sessions.begin() as session:
        await session.execute(
            _sql(
                "TRUNCATE segmentation.segment_membership, segmentation.outbox, segmentation.outbox_template, "
                "segmentation.run_result"
            )
        )
        await session.execute(_sql("DELETE FROM segmentation.segmentation_run"))
    async with sessions() as session:
        await session.execute(_sql("CHECKPOINT"))


def _sql(text: str) -> sa.TextClause:
    return sa.text(text)
