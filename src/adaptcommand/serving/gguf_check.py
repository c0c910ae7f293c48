"""Does llama.cpp apply an exported adapter as PEFT does? (needs the optional llama-cpp-python)

    python -m adaptcommand.serving.gguf_check --out runs/gguf_check

On the embedded model: a random LoRA on every projection (q, k, v, o, gate, up, down) is
exported with `export_gguf`; llama.cpp runs base GGUF + adapter GGUF and PEFT runs base +
adapter, greedy, on the same token ids. Reported per base GGUF type: whether the greedy tokens
agree, the largest logit difference at the end of each prompt, and how much the adapter moves
PEFT's logits (so agreement is not the adapter doing nothing). f32 base: the dequantized weights
PEFT also runs, so logits must be close; q4_1: the shipped file, requantized at load, so only
the first tokens are expected to agree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.loading import EMBEDDED, load_model
from adaptcommand.models.prompting import render_prompt
from adaptcommand.serving.gguf_export import export_gguf

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TURNS = ["Set the lights to 40 and make them warm.",
         "It's cold, put the AC on heat at 23 degrees.",
         "Turn the TV to Netflix with volume 25.",
         "Arm the security system, I'm going out."]


def random_lora(base: torch.nn.Module, path: Path, *, r: int = 8, alpha: float = 16,
                scale: float = 0.3, seed: int = 0, rslora: bool = False,
                targets: list[str] = ALL_PROJECTIONS) -> PeftModel:
    """A LoRA with random A and B (PEFT zeroes B: the delta would vanish), saved to `path`."""
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                            use_rslora=rslora))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    model.save_pretrained(str(path))
    model.eval()
    return model


def peft_greedy(model: torch.nn.Module, ids: list[int], steps: int) -> tuple[list[int], np.ndarray]:
    """(greedy tokens, logits after the prompt), step by step without a cache: the reference."""
    tokens = list(ids)
    first: np.ndarray | None = None
    with torch.inference_mode():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([tokens])).logits[0, -1].float().numpy()
            first = logits if first is None else first
            tokens.append(int(logits.argmax()))
    assert first is not None
    return tokens[len(ids):], first


def llama_greedy(llm: Any, ids: list[int], steps: int) -> tuple[list[int], np.ndarray]:
    llm.reset()
    llm.eval(ids)
    first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    tokens: list[int] = []
    logits = first
    for _ in range(steps):
        tokens.append(int(logits.argmax()))
        llm.eval([tokens[-1]])
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    return tokens, first


def compare_with_llama_cpp(work: Path, llama_cpp: ModuleType, new_tokens: int = 8,
                           threads: int = 2) -> dict[str, Any]:
    """The comparison described in the module doc, written under `work`; returns the report."""
    loaded = load_model(EMBEDDED, device="cpu", dtype="float32")
    prompts = [loaded.tokenizer(render_prompt(loaded.tokenizer, [{"role": "user", "text": t}],
                                              "You run a smart home."),
                                add_special_tokens=False)["input_ids"] for t in TURNS]
    base_first = [peft_greedy(loaded.model, ids, 1)[1] for ids in prompts]
    peft_model = random_lora(loaded.model, work / "adapters" / "persona_000", scale=0.05)
    reference = [peft_greedy(peft_model, ids, new_tokens) for ids in prompts]
    effect = max(float(np.abs(ref[1] - base).max()) for ref, base in zip(reference, base_first,
                                                                         strict=True))
    report: dict[str, Any] = {"prompts": len(prompts), "new_tokens": new_tokens}
    for base_type in ("f32", "q4_1"):
        out = work / f"gguf-{base_type}"
        manifest = export_gguf(work / "adapters", out, model=EMBEDDED, base_type=base_type)
        llm = llama_cpp.Llama(model_path=str(out / manifest["base_gguf"]),
                              lora_path=str(out / manifest["adapters"]["persona_000"]),
                              n_ctx=512, logits_all=True, n_threads=threads, verbose=False,
                              seed=0)
        runs = [llama_greedy(llm, ids, new_tokens) for ids in prompts]
        report[base_type] = {
            "same_greedy_tokens": all(run[0] == ref[0] for run, ref in zip(runs, reference,
                                                                           strict=True)),
            "first_token_agrees": all(run[0][0] == ref[0][0] for run, ref in zip(
                runs, reference, strict=True)),
            "tokens_agreeing": sum(a == b for run, ref in zip(runs, reference, strict=True)
                                   for a, b in zip(run[0], ref[0], strict=True)),
            "max_abs_logit_diff": max(float(np.abs(run[1] - ref[1]).max())
                                      for run, ref in zip(runs, reference, strict=True)),
            "adapter_effect": effect,
        }
        del llm
    write_json_atomic(work / "gguf_check.json", report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gguf_check"))
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()
    import llama_cpp

    print(json.dumps(compare_with_llama_cpp(args.out, llama_cpp, args.new_tokens), indent=1))


if __name__ == "__main__":
    main()
