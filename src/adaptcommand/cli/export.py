"""`adaptcommand export`: trained adapters in a format another runtime loads (llama.cpp)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adaptcommand.cli.app import app

console = Console()


class ExportFormat(StrEnum):
    gguf = "gguf"


class BaseType(StrEnum):
    q4_1 = "q4_1"
    f16 = "f16"
    f32 = "f32"
    none = "none"


class LoraType(StrEnum):
    f32 = "f32"
    f16 = "f16"


@app.command("export")
def export(
    adapters: Annotated[Path, typer.Option(
        "--adapters", help="Directory of <persona_id>/ and unified/ LoRA adapters (PEFT).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", help="gguf: llama.cpp LoRA GGUFs plus the base model GGUF. (vLLM, LoRAX "
        "and PEFT load the adapter directories as they are.)")] = ExportFormat.gguf,
    model: Annotated[str, typer.Option(
        "--model", help="Base model the adapters were trained on.")] = "embedded",
    base_type: Annotated[BaseType, typer.Option(
        "--base-type", help="Base GGUF: q4_1 (the embedded model's own file, what a device "
        "ships), f16/f32 (dequantized, for exact comparison) or none.")] = BaseType.q4_1,
    lora_type: Annotated[LoraType, typer.Option(
        "--lora-type", help="Float type of the adapter tensors.")] = LoraType.f32,
) -> None:
    """Write each user's adapter as a llama.cpp LoRA GGUF, with the base GGUF it applies to."""
    from adaptcommand.serving.gguf_export import export_gguf

    manifest = export_gguf(adapters, out, model=model, base_type=base_type.value,
                           lora_type=lora_type.value)
    base = manifest["base_gguf"] or "no base GGUF"
    console.print(f"wrote {len(manifest['adapters'])} {fmt.value} adapters and {base} "
                  f"to {out} (manifest.json lists them)")
