"""Generate the unlabelled model replies of the gold set, each line with its provenance.

    PYTHONPATH=src OMP_NUM_THREADS=2 .venv/bin/python data/gold_model_replies/generate.py \
        --work runs/gold_gen --out runs/gold_gen/replies.jsonl

Two arms of the embedded SmolLM2-135M-Instruct: the base model, and a unified LoRA trained for
one epoch on a small synthetic corpus (configs/lora_training.json otherwise). Prompts: turns of
the real sample's sessions (data/edgewisepersona_sample/cold_start_dev.jsonl; the reply after
message 0, 2 or 4, rotating by session) and test turns of the synthetic corpus. Greedy, the
evaluation defaults (reference system prompt, 5 context pairs, 64 new tokens). The replies are
then labelled by hand (see README.md); this script never writes labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adaptcommand.config import load_config
from adaptcommand.data.io import load_split
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.schema import Message
from adaptcommand.data.synth import synthesize
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.predictor import make_predictor
from adaptcommand.evaluation.turns import Turn, select_turns
from adaptcommand.fileio import read_jsonl, write_jsonl_atomic
from adaptcommand.models.adapters import UNIFIED, attach_adapters
from adaptcommand.models.loading import load_model
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.recipes import run_training

ROOT = Path(__file__).resolve().parents[2]
REAL_SAMPLE = ROOT / "data/edgewisepersona_sample/cold_start_dev.jsonl"
SYNTH = {"personas": 6, "sessions": 12, "seed": 13}
# How the adapted arm's adapter was trained (recorded in each of its replies' provenance).
ADAPTER = {"strategy": "unified", "config": "configs/lora_training.json", "epochs": 1,
           "corpus": {"generator": "data.synth.synthesize", **SYNTH}, "split": "train"}


def real_turns(rows: range) -> list[Turn]:
    """One turn per real session: the reply after its message 0, 2 or 4 (by row)."""
    sessions = [row for _, row in read_jsonl(REAL_SAMPLE)]
    turns = []
    for row in rows:
        session = sessions[row]
        index = 1 + 2 * (row % 3)
        messages = session["messages"]
        turns.append(Turn(session["persona_id"], session["dialogue_idx"], index,
                          tuple(Message.model_validate(m) for m in messages[:index]),
                          messages[index]["text"] if index < len(messages) else ""))
    return turns


def synthetic_turns(data_dir: Path, count: int, offset: int) -> list[Turn]:
    """`count` test turns of the synthetic corpus, every other one from `offset`."""
    turns = select_turns(load_split(data_dir, "test"), 0)
    return turns[offset::2][:count]


def train_unified(data_dir: Path, out_dir: Path) -> Path:
    config = load_config(ROOT / "configs/lora_training.json", TrainingConfig,
                         {"optimizer.epochs": 1})
    run_training("unified", config, data_dir, out_dir, show_progress=False)
    return out_dir / UNIFIED


def provenance(turn: Turn, arm: str, source: str, config: EvalConfig) -> dict[str, object]:
    generation: dict[str, object] = {
        "decoding": "greedy", "max_new_tokens": config.generation.max_new_tokens,
        "max_context_messages": config.prompt.max_context_messages,
        "system_prompt": "reference (models.prompting.DEFAULT_SYSTEM_PROMPT)"}
    if arm != "baseline":
        generation["adapter"] = ADAPTER
    return {"arm": arm, "model": config.model.name, "prompt_source": source,
            "persona_id": turn.persona_id, "session_id": turn.session_id,
            "msg_index": turn.turn_index, "role": "assistant",
            "generation": generation,
            "last_user_message": next((m.text for m in reversed(turn.context)
                                       if m.role == "user"), "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/gold_gen"))
    parser.add_argument("--out", type=Path, default=Path("runs/gold_gen/replies.jsonl"))
    parser.add_argument("--real", type=int, default=65, help="Real-sample prompts per arm.")
    parser.add_argument("--real-from", type=int, default=0,
                        help="First real-sample row of the base arm.")
    parser.add_argument("--synthetic", type=int, default=50, help="Synthetic prompts per arm.")
    parser.add_argument("--arms", default="baseline,unified_lora_1epoch",
                        help="Comma-separated arms to generate (in this order).")
    args = parser.parse_args()
    data_dir = args.work / "data"
    if not (data_dir / "dialogs_clean.jsonl").is_file():
        synthesize(SYNTH["personas"], SYNTH["sessions"], SYNTH["seed"], args.work / "raw")
        prepare_from_source(args.work / "raw", data_dir)
    config = EvalConfig()
    loaded = load_model(config.model.name)
    # Base rows 0..real-1, adapted rows from the end: the two arms overlap on a few sessions.
    plan = {"baseline": (range(args.real_from, args.real_from + args.real), 0),
            "unified_lora_1epoch": (range(100 - args.real, 100), 1)}
    plan = {arm: plan[arm] for arm in args.arms.split(",")}
    rows = []
    for arm, (real_rows, offset) in plan.items():
        if arm != "baseline":
            adapter = train_unified(data_dir, args.work / "adapters")
            loaded.model = attach_adapters(loaded.model, {UNIFIED: adapter})
        router = (lambda _persona: UNIFIED) if arm != "baseline" else None
        predict = make_predictor(loaded, config, router)
        for source, turns in (("real_sample", real_turns(real_rows)),
                              ("synthetic", synthetic_turns(data_dir, args.synthetic, offset))):
            for turn, reply in zip(turns, predict(turns) if turns else [], strict=True):
                rows.append({**provenance(turn, arm, source, config), "text": reply})
    write_jsonl_atomic(args.out, [{"id": i, **row} for i, row in enumerate(rows)])
    print(f"{len(rows)} replies -> {args.out}")


if __name__ == "__main__":
    main()
