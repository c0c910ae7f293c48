"""The demo with every arm, end to end on tiny-random: each arm trains or merges what it needs,
is evaluated and probed, and lands in one report with its own group's baseline."""

from __future__ import annotations

import json
from pathlib import Path

from adaptcommand.demo import COLD_START, CORE_ARMS, EXTRA_ARMS, DemoPlan, plan_arms, run_demo


def tiny_plan() -> DemoPlan:
    return DemoPlan(
        personas=3, sessions=6, model="tiny-random",
        training={"optimizer.epochs": 1, "data.max_length": 128, "early_stopping.patience": None,
                  "adapter.r": 2, "adapter.num_virtual_tokens": 2},
        evaluation={"generation.max_new_tokens": 3, "evaluation.skip_assistant_turns": 1,
                    "evaluation.bootstrap_resamples": 10},
        arm_training={"cluster": {"cluster.k": 2}},
        cold_start_personas=2, cold_start_sessions=2,
    )


def test_core_plan_has_no_cold_start_arms_without_held_out_users() -> None:
    plan = DemoPlan.full()
    assert plan_arms(plan, all_arms=False) == list(CORE_ARMS)
    assert all(arm.split != COLD_START for arm in plan_arms(plan, all_arms=True))


def test_all_arms_end_to_end(tmp_path: Path) -> None:
    report = run_demo(tmp_path, tiny_plan(), all_arms=True)

    compare = json.loads((report / "compare.json").read_text())
    rows = {(row["group"], row["arm"]): row for row in compare["overview"]}
    expected = {(arm.split, arm.name) for arm in (*CORE_ARMS, *EXTRA_ARMS)}
    assert set(rows) == expected
    assert [group["name"] for group in compare["groups"]] == ["test", COLD_START]
    # Every arm with trained adapters reports their cost; arms without adapters cost nothing.
    for (_, arm), row in rows.items():
        cost = row["cost"]
        assert cost is not None, arm
        assert (cost["n_adapters"] > 0) == (arm not in ("baseline", "memory")), arm
        assert row["probe"], arm
    assert rows[("test", "per-user")]["cost"]["n_adapters"] == 3
    assert rows[("test", "cluster")]["cost"]["n_adapters"] == 2
    assert rows[(COLD_START, "merged")]["cost"]["n_adapters"] == 2
    # Cold-start users are never trained on and are the only users of their group.
    cold = json.loads((tmp_path / "runs" / COLD_START / "merged" / "results.json").read_text())
    trained = json.loads((tmp_path / "runs" / "per-user" / "results.json").read_text())
    assert cold["per_persona"].keys().isdisjoint(trained["per_persona"])
    assert len(cold["per_persona"]) == 2
    assert (report / "report.html").stat().st_size > 0
