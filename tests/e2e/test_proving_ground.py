"""The proving ground, small: two replicas of every service, a seeded workload through both doors, crashes of a
replica, the broker and PostgreSQL, then every invariant (see `bench/proving_ground.py`).

The seed varies per run and is printed (and named in the failure); `PROVING_GROUND_SEED=N` replays a run.
"""

import os

import pytest

from bench.proving_ground import Config, run, seed_from_env

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_proving_ground_invariants_hold_after_crashes(tmp_path) -> None:
    cfg = Config(seed=seed_from_env(), events=int(os.environ.get("PROVING_GROUND_EVENTS", "400")), faults=3,
                 customers=40, log_dir=tmp_path / "logs")
    figures, divergences = run(cfg)
    assert figures["faults"] == cfg.faults, f"seed {cfg.seed}: only {figures['fault_list']} injected"
    failing = {name: lines for name, lines in divergences.items() if lines}
    assert not failing, (f"seed {cfg.seed} (replay: PROVING_GROUND_SEED={cfg.seed}): divergences\n"
                         + "\n".join(f"{name}:\n  " + "\n  ".join(lines[:30]) for name, lines in failing.items()))
