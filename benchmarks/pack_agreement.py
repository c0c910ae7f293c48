"""Packed vs alone: how far apart are the same adapters trained 8 per step and 1 per step?

    .venv/bin/python benchmarks/pack_agreement.py --model tiny-random --personas 8 --per-step 8

Trains the same adapters (each persona's first `--sessions` train sessions of a synthesized
corpus, the reference hyper-parameters and dropout) twice with the engine: one adapter per step,
then `--per-step` adapters packed into every step (token cap and padding slack lifted so steps
really hold that many). Reports the largest |weight difference| over all adapters, the same
relative to the largest |weight| of its tensor, how many adapters are bit-identical, and
whether each adapter's two versions give the same greedy replies to a few evaluation prompts.

On a CPU each adapter runs its own forward inside a packed step (engine.forward_passes), so
every difference is 0 (tests/test_training_engine.py proves it byte for byte). On a GPU the
adapters share one bf16 pass, whose reductions round differently for other batch shapes: this
bounds what packing changes there.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
from pathlib import Path

import torch
from bf16_agreement import prompts, replies
from peft import get_peft_model, set_peft_model_state_dict
from torch import Tensor
from train_speed import benchmark_data, persona_examples

from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.loading import LoadedModel, load_model
from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT
from adaptcommand.training.batching import Example
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.engine import AdapterJob, train_adapters
from adaptcommand.training.export import lora_config
from adaptcommand.training.multi_lora import MultiLora

States = dict[str, dict[str, Tensor]]


def train(loaded: LoadedModel, config: TrainingConfig,
          examples: dict[str, list[Example]]) -> tuple[States, list[int]]:
    """Every persona's adapter weights, and how many adapters each step held."""
    model = copy.deepcopy(loaded.model)
    adapter = config.adapter
    lora = MultiLora(model, adapter.target_modules, adapter.r, adapter.alpha, adapter.dropout)
    states: States = {}
    widths: list[int] = []
    train_adapters(model, lora, [AdapterJob(p, rows, []) for p, rows in examples.items()], config,
                   lambda result: states.__setitem__(result.name, result.state),
                   lambda report: widths.append(len(report.losses)))
    return states, widths


def differences(alone: States, packed: States) -> dict[str, float | int]:
    """Largest absolute and relative (to the tensor's largest |weight|) weight differences."""
    absolute, relative, identical = 0.0, 0.0, 0
    for name, state in alone.items():
        identical += all(torch.equal(packed[name][key], t) for key, t in state.items())
        for key, tensor in state.items():
            delta = (packed[name][key] - tensor).abs().max().item()
            absolute = max(absolute, delta)
            relative = max(relative, delta / max(tensor.abs().max().item(), 1e-30))
    return {"max_abs_weight_diff": absolute, "max_rel_weight_diff": relative,
            "identical_adapters": identical}


def adapter_replies(loaded: LoadedModel, config: TrainingConfig, states: States, texts: list[str],
                    max_new_tokens: int) -> dict[str, list[list[int]]]:
    """Greedy reply tokens of the base model plus each adapter, one prompt at a time."""
    model = get_peft_model(copy.deepcopy(loaded.model), lora_config(config, None)).eval()
    peft_loaded = dataclasses.replace(loaded, model=model)
    out = {}
    for name, state in states.items():
        set_peft_model_state_dict(model, state)
        out[name] = replies(peft_loaded, texts, max_new_tokens)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--personas", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=4, help="Train sessions per persona.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-step", type=int, default=8, help="Adapters per packed step.")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--output", type=Path, default=Path("runs/pack_agreement.json"))
    args = parser.parse_args()
    config = TrainingConfig().updated({
        "model.name": args.model, "model.device": args.device, "optimizer.epochs": args.epochs,
        "prompt.system_prompt": DEFAULT_SYSTEM_PROMPT, "throughput.max_tokens_per_step": 10**9,
        "throughput.pack_padding_slack": 10**9})
    with tempfile.TemporaryDirectory() as tmp:
        data = benchmark_data(None, args.personas, Path(tmp))
        examples = persona_examples(config, data, args.personas, args.sessions)[
            config.data.example_unit]
    loaded = load_model(config.model.name, device=config.model.device, dtype=config.model.dtype)
    alone, _ = train(loaded, config.updated({"throughput.adapters_per_step": 1}), examples)
    packed, widths = train(loaded, config.updated({"throughput.adapters_per_step": args.per_step}),
                           examples)
    texts = prompts(args.prompts, loaded.tokenizer)
    said = {arm: adapter_replies(loaded, config, states, texts, args.max_new_tokens)
            for arm, states in (("alone", alone), ("packed", packed))}
    same = sum(a == b for name in alone
               for a, b in zip(said["alone"][name], said["packed"][name], strict=True))
    result = {
        "model": args.model, "device": str(loaded.device), "dtype": str(loaded.dtype),
        "adapters": len(alone), "per_step": args.per_step,
        "mean_adapters_per_step": round(sum(widths) / len(widths), 2),
        "dropout": config.adapter.dropout, "epochs": config.optimizer.epochs,
        **differences(alone, packed),
        "replies": len(alone) * len(texts), "identical_replies": same,
    }
    write_json_atomic(args.output, result)
    print(f"packed ({result['mean_adapters_per_step']} adapters per step) vs alone, "
          f"{result['adapters']} {args.model} adapters on {result['device']} {result['dtype']}: "
          f"max |delta weight| {result['max_abs_weight_diff']:.3g}, max relative "
          f"{result['max_rel_weight_diff']:.3g}, bit-identical adapters "
          f"{result['identical_adapters']}/{result['adapters']}, identical greedy replies "
          f"{same}/{result['replies']}")


if __name__ == "__main__":
    main()
