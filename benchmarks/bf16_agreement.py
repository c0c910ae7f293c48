"""bf16 vs fp32: do greedy replies and next-token logits agree on a few evaluation prompts?

    .venv/bin/python benchmarks/bf16_agreement.py --model embedded --prompts 8 --device cuda

The same model is loaded twice on one device, in fp32 and in bf16 (what `auto` picks on CUDA),
and given the same prompts (test turns of a synthesized corpus, the reference system prompt, 5
pairs of context). Reported: replies identical (greedy, one prompt at a time, so batching plays
no part), the mean share of reply tokens equal before the first difference, top-1 agreement and
the largest absolute difference of the prompts' last-position logits, and their mean KL
divergence (fp32 || bf16). The verdict the issue asks for: how far bf16 evaluation numbers can be
trusted to equal fp32 ones.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from adaptcommand.data.io import load_split
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.synth import synthesize
from adaptcommand.evaluation.turns import select_turns
from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.generation import GenerationSettings, generate
from adaptcommand.models.loading import LoadedModel, load_model
from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT, render_prompt


def prompts(count: int, tokenizer) -> list[str]:  # noqa: ANN001 - a tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(4, 20, 0, Path(tmp) / "raw")
        prepare_from_source(Path(tmp) / "raw", Path(tmp) / "data")
        turns = select_turns(load_split(Path(tmp) / "data", "test"), 2)
    step = max(1, len(turns) // count)
    return [render_prompt(tokenizer, turn.context, DEFAULT_SYSTEM_PROMPT)
            for turn in turns[::step][:count]]


def last_logits(loaded: LoadedModel, texts: list[str]) -> torch.Tensor:
    """fp32 logits of each prompt's last position, one prompt at a time (no padding)."""
    rows = []
    with torch.inference_mode():
        for text in texts:
            ids = loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False)
            logits = loaded.model(**ids.to(loaded.device), logits_to_keep=1).logits
            rows.append(logits[0, -1].float().cpu())
    return torch.stack(rows)


def replies(loaded: LoadedModel, texts: list[str], max_new_tokens: int) -> list[list[int]]:
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=1,
                                  prefix_cache=False, continuous_batching=False)
    out = generate(loaded.model, loaded.tokenizer, texts, settings,
                   end_of_turn_ids=loaded.end_of_turn_ids)
    return [loaded.tokenizer(reply, add_special_tokens=False)["input_ids"] for reply in out]


def shared_share(a: list[int], b: list[int]) -> float:
    """Share of the longer reply's tokens that come before the first difference."""
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))
    return same / max(len(a), len(b), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--output", type=Path, default=Path("runs/bf16_agreement.json"))
    args = parser.parse_args()
    arms = {dtype: load_model(args.model, device=args.device, dtype=dtype)
            for dtype in ("float32", "bfloat16")}
    texts = prompts(args.prompts, arms["float32"].tokenizer)
    logits = {dtype: last_logits(loaded, texts) for dtype, loaded in arms.items()}
    tokens = {dtype: replies(loaded, texts, args.max_new_tokens) for dtype, loaded in arms.items()}
    full, half = logits["float32"], logits["bfloat16"]
    kl = torch.nn.functional.kl_div(half.log_softmax(-1), full.log_softmax(-1),
                                    log_target=True, reduction="none").sum(-1)
    pairs = list(zip(tokens["float32"], tokens["bfloat16"], strict=True))
    result = {
        "model": args.model, "device": str(arms["float32"].device), "prompts": len(texts),
        "identical_replies": sum(a == b for a, b in pairs),
        "mean_shared_prefix": round(sum(shared_share(a, b) for a, b in pairs) / len(pairs), 3),
        "top1_agreement": round((full.argmax(-1) == half.argmax(-1)).float().mean().item(), 3),
        "max_abs_logit_diff": round((full - half).abs().max().item(), 4),
        "mean_kl": round(max(kl.mean().item(), 0.0), 6),
    }
    write_json_atomic(args.output, result)
    print(f"bf16 vs fp32 on {result['device']}, {len(texts)} prompts: identical greedy replies "
          f"{result['identical_replies']}/{len(texts)}, mean shared reply prefix "
          f"{result['mean_shared_prefix']:.3f}, last-position top-1 agreement "
          f"{result['top1_agreement']:.3f}, max |logit diff| {result['max_abs_logit_diff']}, "
          f"mean KL {result['mean_kl']:.2e}")


if __name__ == "__main__":
    main()
