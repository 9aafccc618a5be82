"""CLV models against `lifetimes` 0.11.3 on the same simulated customers: BG/NBD + Gamma-Gamma fit, 12-month CLV.

One population of N customers (default 1,000,000) is drawn from BG/NBD (r=0.25, α=30 days, a=0.8, b=2.5)
and Gamma-Gamma (p=6, q=4, γ=15), summarised per customer in days as `lifetimes` does (x repeat purchase days,
t_x and T whole days since the first purchase, mean spend of the repeat purchases). Both libraries then get
exactly these arrays, in the same process:

- fit (P3): `BetaGeoFitter().fit` + `GammaGammaFitter().fit` on the repeat buyers, against this service's
  `collapse` + `BetaGeo.fit` + `GammaGamma.fit` (from the raw per-customer arrays, the collapse included);
- CLV (P4): `GammaGammaFitter.customer_lifetime_value(bgf, …, time=12, discount_rate=0.01, freq="D")` — monthly
  steps of 30 days, discounted monthly, margin 1 — against `discounted_clv` with the same definition.

Each side runs `--repeat` times (default 3) and its fastest run counts. The parameters must agree within 1e-3
relative and the CLVs computed from the same parameters within 1e-6 relative (a wrong answer raises); the
end-to-end CLV difference (each library with its own fit) is reported.
Needs `pip install -r bench/requirements-clv.txt` (`./crm bench clv` does it).
"""

import argparse
import time
import warnings

import numpy as np

from clv.probability_models import BetaGeo, GammaGamma, ParetoNBD, collapse, discounted_clv, simulate

TRUTH = {"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.5}
SPEND = {"p": 6.0, "q": 4.0, "gamma": 15.0}
PARAMETER_TOLERANCE = 1e-3
CLV_TOLERANCE = 1e-6


def population(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    T = rng.integers(1, 366, n).astype(np.float64)  # first purchase within the past year, in whole days
    x, t_x = simulate.bgnbd(T, *TRUTH.values(), rng)
    t_x = np.where(x > 0, np.minimum(np.ceil(t_x), T), 0.0)
    return {"x": x, "t_x": t_x, "T": T, "zbar": simulate.gamma_gamma(x, *SPEND.values(), rng)}


def ours_fit(d: dict) -> tuple[BetaGeo, GammaGamma, dict]:
    summary, _ = collapse(d["x"], d["t_x"], d["T"], with_inverse=False)
    bg, bg_report = BetaGeo.fit(summary)
    gg, gg_report = GammaGamma.fit(d["x"], d["zbar"])
    if not (bg_report.converged and gg_report.converged):
        raise AssertionError(f"our fit did not converge: {bg_report.message} / {gg_report.message}")
    return bg, gg, {"rows": bg_report.rows, "bg_iterations": bg_report.iterations}


def ours_clv(bg: BetaGeo, gg: GammaGamma, d: dict) -> np.ndarray:
    return discounted_clv(
        bg, gg, d["x"], d["t_x"], d["T"], d["zbar"], months=12, units_per_month=30.0, monthly_discount_rate=0.01, margin=1.0
    )


def lifetimes_fit(frames: dict):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(frames["x"], frames["t_x"], frames["T"])
    repeat = frames["x"] > 0
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(frames["x"][repeat], frames["zbar"][repeat])
    return bgf, ggf


def lifetimes_clv(bgf, ggf, frames: dict) -> np.ndarray:
    clv = ggf.customer_lifetime_value(
        bgf, frames["x"], frames["t_x"], frames["T"], frames["zbar"], time=12, discount_rate=0.01, freq="D"
    )
    return clv.to_numpy()


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


def _met(seconds: float, goal: float) -> str:
    return "met" if seconds <= goal else "NOT met"


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-9)))


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench clv", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side; the fastest counts")
    parser.add_argument("--skip-choice", action="store_true", help="leave out the Pareto/NBD and model-choice timings")
    parser.add_argument(
        "--pareto-reference-customers",
        type=int,
        default=100_000,
        help="customers for the Pareto/NBD side by side with lifetimes (0: skip; it takes lifetimes ~20 s per 100k)",
    )
    args = parser.parse_args(argv)
    try:
        import lifetimes
        import pandas as pd
    except ImportError as exc:
        raise SystemExit(f"the reference is missing ({exc}): pip install -r bench/requirements-clv.txt") from None
    warnings.filterwarnings("ignore")

    print(f"simulating {args.customers:,} customers (BG/NBD {TRUTH}, Gamma-Gamma {SPEND}) ...")
    d = population(args.customers, args.seed)
    frames = {k: pd.Series(v) for k, v in d.items()}
    print(f"  repeat buyers: {int((d['x'] > 0).sum()):,}; lifetimes {lifetimes.__version__}")

    # Warm-up on a small population: imports, autograd tracing, scipy's lazy loading — not what we measure.
    small = population(20_000, args.seed + 1)
    bg_s, gg_s, _ = ours_fit(small)
    ours_clv(bg_s, gg_s, small)
    small_frames = {k: pd.Series(v) for k, v in small.items()}
    lifetimes_clv(*lifetimes_fit(small_frames), small_frames)

    # Each side is timed `--repeat` times and the fastest run counts (the machine is shared: a run can lose
    # its core to a neighbour for a while; the minimum is what the code costs).
    ours_fit_times, lifetimes_fit_times, ours_clv_times, lifetimes_clv_times = [], [], [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        bg, gg, info = ours_fit(d)
        ours_fit_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        bgf, ggf = lifetimes_fit(frames)
        lifetimes_fit_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        clv = ours_clv(bg, gg, d)
        ours_clv_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        reference = lifetimes_clv(bgf, ggf, frames)
        lifetimes_clv_times.append(time.perf_counter() - started)
    ours_fit_s, lifetimes_fit_s = min(ours_fit_times), min(lifetimes_fit_times)
    ours_clv_s, lifetimes_clv_s = min(ours_clv_times), min(lifetimes_clv_times)
    print(f"ours      fit: {ours_fit_s:8.3f} s  (runs {_runs(ours_fit_times)}; {info['rows']:,} distinct (x, t_x, T) rows)")
    print(f"lifetimes fit: {lifetimes_fit_s:8.3f} s  (runs {_runs(lifetimes_fit_times)})")
    print(f"ours      12-month CLV: {ours_clv_s:8.3f} s  (runs {_runs(ours_clv_times)})")
    print(f"lifetimes 12-month CLV: {lifetimes_clv_s:8.3f} s  (runs {_runs(lifetimes_clv_times)})")

    theirs = {**bgf.params_.to_dict(), "p": ggf.params_["p"], "q": ggf.params_["q"], "gamma": ggf.params_["v"]}
    mine = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "gamma": gg.gamma}
    parameter_diffs = {k: abs(mine[k] - theirs[k]) / abs(theirs[k]) for k in mine}
    same_parameters = ours_clv(
        BetaGeo(theirs["r"], theirs["alpha"], theirs["a"], theirs["b"]), GammaGamma(theirs["p"], theirs["q"], theirs["gamma"]), d
    )
    clv_same_params = relative_difference(same_parameters, reference)
    clv_end_to_end = relative_difference(clv, reference)
    for k in mine:
        print(f"  {k:>6}: ours {mine[k]:.8g}  lifetimes {theirs[k]:.8g}  rel. diff {parameter_diffs[k]:.2e}")
    largest = max(parameter_diffs, key=parameter_diffs.get)
    fit_ratio, clv_ratio = lifetimes_fit_s / ours_fit_s, lifetimes_clv_s / ours_clv_s
    print(f"largest parameter difference: {largest} {parameter_diffs[largest]:.2e} (tolerance {PARAMETER_TOLERANCE:g})")
    print(
        f"largest CLV difference: {clv_same_params:.2e} relative from the same parameters, "
        f"{clv_end_to_end:.2e} end to end (mean CLV {reference.mean():.4f})"
    )
    print(f"fit  ratio: {fit_ratio:6.1f}x  (P3 goal >= 30x: {'met' if fit_ratio >= 30 else 'NOT met'})")
    print(f"CLV  ratio: {clv_ratio:6.1f}x  (P4 goal >= 50x: {'met' if clv_ratio >= 50 else 'NOT met'})")
    choice = {} if args.skip_choice else model_choice(d, args.seed, args.repeat)
    if args.pareto_reference_customers:
        choice |= pareto_side_by_side({k: v[: args.pareto_reference_customers] for k, v in d.items()})
    if not np.all(np.isfinite(clv)):
        raise AssertionError("our CLV has non-finite values")
    if parameter_diffs[largest] > PARAMETER_TOLERANCE:
        raise AssertionError(f"parameters differ from lifetimes: {parameter_diffs}")
    if clv_same_params > CLV_TOLERANCE:
        raise AssertionError(f"CLV differs from lifetimes by {clv_same_params:.3e} relative at the same parameters")
    return {
        "benchmark": "clv",
        "customers": args.customers,
        "reference": f"lifetimes {lifetimes.__version__}",
        "ours_fit_s": round(ours_fit_s, 4),
        "lifetimes_fit_s": round(lifetimes_fit_s, 3),
        "fit_ratio": round(fit_ratio, 1),
        "ours_clv_s": round(ours_clv_s, 4),
        "lifetimes_clv_s": round(lifetimes_clv_s, 3),
        "clv_ratio": round(clv_ratio, 1),
        "max_parameter_rel_diff": parameter_diffs[largest],
        "max_parameter_rel_diff_name": largest,
        "max_clv_rel_diff_same_params": clv_same_params,
        "max_clv_rel_diff_end_to_end": clv_end_to_end,
        "distinct_rows": info["rows"],
        "repeat": args.repeat,
        **choice,
    }


PARETO_GOAL_S, CHOICE_GOAL_S = 2.0, 5.0


def pareto_side_by_side(d: dict) -> dict:
    """Pareto/NBD fit, ours against `lifetimes.ParetoNBDFitter`, on the same (fewer) customers, one run each."""
    import pandas as pd
    from lifetimes import ParetoNBDFitter

    n = len(d["x"])
    started = time.perf_counter()
    summary, _ = collapse(d["x"], d["t_x"], d["T"], with_inverse=False)
    ours, report = ParetoNBD.fit(summary)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = ParetoNBDFitter(penalizer_coef=0.0).fit(pd.Series(d["x"]), pd.Series(d["t_x"]), pd.Series(d["T"]))
    theirs_s = time.perf_counter() - started
    p = theirs.params_
    diffs = {k: abs(getattr(ours, k) - p[k]) / abs(p[k]) for k in ("r", "alpha", "s", "beta")}
    largest = max(diffs, key=diffs.get)
    print(
        f"Pareto/NBD on {n:,}: ours {ours_s:.3f} s, lifetimes {theirs_s:.3f} s, ratio {theirs_s / ours_s:.1f}x; "
        f"largest parameter difference {largest} {diffs[largest]:.2e} (ours LL {report.log_likelihood:.2f})"
    )
    return {
        "pareto_reference_customers": n,
        "ours_pareto_small_s": round(ours_s, 3),
        "lifetimes_pareto_small_s": round(theirs_s, 3),
        "pareto_ratio": round(theirs_s / ours_s, 1),
        "pareto_max_parameter_rel_diff": diffs[largest],
    }


def model_choice(d: dict, seed: int, repeat: int = 1) -> dict:
    """Pareto/NBD fit and the whole `auto` model choice on the same customers, against the issue's goals.

    `lifetimes` takes minutes for Pareto/NBD on 1M customers (about 20 s per 100k here), so there is no side
    by side for these two: the figures are compared with the goals only. The holdout purchases are drawn as
    Poisson counts around the true BG/NBD model's conditional expectation for a 90-day holdout — a stand-in
    with the right shape; the timing, not the choice, is what is measured.
    """
    from clv.fits.service import fit_statistics
    from clv.transaction_summary.repository import Statistics

    rng = np.random.default_rng(seed + 7)
    truth = BetaGeo(TRUTH["r"], TRUTH["alpha"], TRUTH["a"], TRUTH["b"])
    holdout = rng.poisson(truth.expected_purchases(90.0, d["x"], d["t_x"], d["T"])).astype(np.float64)
    stats = Statistics(
        customer_ids=list(range(len(d["x"]))),
        x=d["x"],
        t_x=d["t_x"],
        T=d["T"],
        mean_repeat_spend=d["zbar"],
        holdout_x=holdout,
        net_value=d["zbar"] * (d["x"] + 1),
    )
    pareto_times, choice_times = [], []
    for _ in range(repeat):  # the fastest run counts, as above
        started = time.perf_counter()
        summary, _ = collapse(d["x"], d["t_x"], d["T"], with_inverse=False)
        _, pareto = ParetoNBD.fit(summary)
        pareto_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        out = fit_statistics("auto", stats, 90.0, 90, 1.0)
        choice_times.append(time.perf_counter() - started)
    pareto_s, choice_s = min(pareto_times), min(choice_times)
    print(
        f"Pareto/NBD fit:   {pareto_s:8.3f} s  (runs {_runs(pareto_times)}; goal <= {PARETO_GOAL_S:g} s: "
        f"{_met(pareto_s, PARETO_GOAL_S)}; usable {pareto.usable}, {pareto.message}; collapse included)"
    )
    print(
        f"model choice:     {choice_s:8.3f} s  (runs {_runs(choice_times)}; goal <= {CHOICE_GOAL_S:g} s: "
        f"{_met(choice_s, CHOICE_GOAL_S)}; 3 fits, 3 holdout predictions, Gamma-Gamma; chose "
        f"{out['model']}; "
        + ", ".join(f"{c['model']} MAE {c['holdout_mean_absolute_error']}" for c in out["selection"]["candidates"])
        + ")"
    )
    return {"pareto_fit_s": round(pareto_s, 3), "model_choice_s": round(choice_s, 3), "chosen": out["model"]}
