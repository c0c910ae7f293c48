"""How much a new user's growing profile knows after k sessions seen: personal-value recall of
the profile's own answer, with no language model (the ceiling a profile arm reads from).

    PYTHONPATH=src .venv/bin/python benchmarks/growing_profile_ceiling.py [--users 16]
        [--sessions 30] [--new-users 4] [--seed 0] [--output results.json]

The study measures the same on its own users as the `mined-profile` arms (`arms.profile_answer`).

Synthesizes a corpus (harder default generator), holds `--new-users` users out as in
`data prepare --cold-start-personas` (3 profile sessions, then up to 20 evaluated), and answers
every evaluated turn (`skip_assistant_turns` 2, context window 5 pairs, as `eval`) with what the
profile line states for the session's context: the mined routine for it plus the usual settings
of the other devices. Scored by `evaluation.personal_values` like an arm's reply, grouped by the
sessions seen before the turn's session (`profile.source=growing`), against the profile frozen
after the 3 profile sessions (what a profile never updated would say).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from adaptcommand.arms.profile import growing_profiles
from adaptcommand.arms.profile_answer import profile_answer
from adaptcommand.data.io import load_split
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.splits import SplitConfig
from adaptcommand.data.synth import synthesize
from adaptcommand.evaluation.personal_values import personal_metrics, personal_turn, score_personal
from adaptcommand.evaluation.turns import select_turns, session_id_of


def measure(data: Path, min_seen: int = 3) -> dict:
    growing = growing_profiles(data, min_seen)
    metas = {(pid, session_id_of(d, i)): d.meta.model_dump()
             for pid, ds in load_split(data, "cold_start").items() for i, d in enumerate(ds)}
    frozen = {pid: min((k for k in growing.seen if k[0] == pid), key=growing.seen.get)
              for pid in {k[0] for k in growing.seen}}
    rows: dict[str, dict[int, list]] = {"growing": {}, "frozen": {}}
    for turn in select_turns(load_split(data, "cold_start"), 2):
        key = (turn.persona_id, turn.session_id)
        if key not in growing.seen:
            continue
        personal = personal_turn(turn.context, turn.reference, 5)
        meta = metas[key]
        for name, profile in (("growing", growing.profiles[key]),
                              ("frozen", growing.profiles[frozen[turn.persona_id]])):
            scores = score_personal(profile_answer(profile, meta), personal)
            rows[name].setdefault(growing.seen[key], []).append((personal, scores))
    return {name: {label: {"turns": len(v), **personal_metrics(v)}
                   for label, v in _binned(by_k).items()} for name, by_k in rows.items()}


BINS = ((3, 5), (6, 10), (11, 15), (16, 22), (3, 22))


def _binned(by_k: dict[int, list]) -> dict[str, list]:
    """Turns pooled over ranges of k (few turns of a handful of new users have personal
    values at any one k)."""
    return {f"{low}-{high}": [row for k, rows in by_k.items() if low <= k <= high for row in rows]
            for low, high in BINS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--new-users", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    result = _synthesized(args)
    if args.output:
        args.output.write_text(json.dumps(result, indent=1))
    print("personal-value recall (all / implicit turns) after k sessions seen, turns")
    for name, by_k in result.items():
        print(name, " ".join(f"k={k}: {_fmt(m['personal_recall'])} / "
                             f"{_fmt(m['personal_recall_implicit'])} ({m['turns']})"
                             for k, m in by_k.items()))


def _synthesized(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(args.users, args.sessions, args.seed, Path(tmp) / "raw")
        prepare_from_source(Path(tmp) / "raw", Path(tmp) / "data", SplitConfig(
            cold_start_personas=args.new_users, cold_start_sessions=20, seed=args.seed))
        return measure(Path(tmp) / "data")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
