"""The proving ground, small: two replicas of every service, a seeded workload through both doors, crashes of a
replica, the broker and PostgreSQL, then every invariant (see `bench/proving_ground.py`).

The seed varies per run and is printed (and named in the failure); `PROVING_GROUND_SEED=N` replays a run.
"""

import os
import warnings

import pytest

from bench.proving_ground import Config, run, seed_from_env

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

# Invariants whose divergences on main are fixed on another branch (named): reported as a warning here until
# that branch is merged; then delete the entry and the invariant fails the test like every other.
PENDING: dict[str, str] = {}


def test_proving_ground_invariants_hold_after_crashes(tmp_path) -> None:
    cfg = Config(
        seed=seed_from_env(),
        events=int(os.environ.get("PROVING_GROUND_EVENTS", "400")),
        faults=4,
        customers=40,
        log_dir=tmp_path / "logs",
    )
    figures, divergences = run(cfg)
    replay = f"seed {cfg.seed} (replay: PROVING_GROUND_SEED={cfg.seed})"
    assert figures["faults"] == cfg.faults, f"{replay}: only {figures['fault_list']} injected"
    assert set(PENDING) <= set(divergences), f"unknown invariants in PENDING: {set(PENDING) - set(divergences)}"
    failing = {name: lines for name, lines in divergences.items() if lines and name not in PENDING}
    pending = {name: lines for name, lines in divergences.items() if lines and name in PENDING}
    for name, lines in pending.items():
        warnings.warn(f"{replay}: {name} has {len(lines)} divergence(s), pending {PENDING[name]}: {lines[:3]}", stacklevel=1)
    assert not failing, f"{replay}: divergences\n" + "\n".join(
        f"{name}:\n  " + "\n  ".join(lines[:30]) for name, lines in failing.items()
    )
