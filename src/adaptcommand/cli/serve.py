"""`adaptcommand serve` (the per-user assistant over HTTP) and `adaptcommand identify`
(how well user turns identify the persona)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adaptcommand.cli.app import app
from adaptcommand.errors import AdaptCommandError
from adaptcommand.serving.config import ServeSettings

console = Console()


class PromptProfileChoice(StrEnum):
    auto = "auto"
    line = "line"
    none = "none"


class QuerySplit(StrEnum):
    val = "val"
    test = "test"


@app.command("serve")
def serve(
    adapters: Annotated[Path, typer.Option(
        "--adapters", help="Directory of <persona_id>/ and unified/ LoRA adapter directories "
        "(read live: adapters added later are served without a restart).")],
    model: Annotated[str, typer.Option(
        "--model", help="Base model: embedded, tiny-random, a local directory or a cached hub "
        "id.")] = "embedded",
    host: Annotated[str, typer.Option(
        "--host", help="Interface to listen on; anything but loopback requires a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    cache_size: Annotated[int, typer.Option(
        "--cache-size", min=1, help="Most adapters loaded at once (least recently used are "
        "unloaded); also the most distinct adapters in one batch.")] = 8,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="ADAPTCOMMAND_API_TOKEN", show_envvar=True,
        help="Bearer token required on /v1/* (/healthz stays open); acts for every user and "
        "may load/unload adapters.")] = None,
    keys_file: Annotated[Path | None, typer.Option(
        "--keys-file", help="Per-user keys (JSON/YAML of sha256-hashed keys, see `adaptcommand "
        "new-key`): a key acts only for its users. Reread when it changes or on SIGHUP.")
    ] = None,
    profiles: Annotated[Path | None, typer.Option(
        "--profiles", help="Mined routines for /v1/users/{id}/routines and the prompts' profile "
        "line: profiles.json or routines.jsonl from `routines mine` (default: "
        "<adapters>/<id>/profile.json).")
    ] = None,
    prompt_profile: Annotated[PromptProfileChoice, typer.Option(
        "--prompt-profile", help="The user's profile line in each prompt: auto (as the "
        "adapters were trained, from their manifest), line (always) or none.")
    ] = "auto",
    max_context_tokens: Annotated[int | None, typer.Option(
        "--max-context-tokens", min=16, help="Prompt + max_tokens limit in tokens (400 "
        "above it); default: the model's context.")] = None,
    max_tokens_limit: Annotated[int, typer.Option(
        "--max-tokens-limit", min=1, help="Requests asking for more max_tokens get a 400.")
    ] = 256,
    data: Annotated[Path | None, typer.Option(
        "--data", help="`data prepare` output: enables identify_user from train-split "
        "centroids (cached as .npz).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Serve each user's assistant over an OpenAI-compatible HTTP API."""
    if token is None and keys_file is None and not _is_loopback(host):
        raise AdaptCommandError(f"refusing to listen on {host} without a token: pass --token, "
                                "set ADAPTCOMMAND_API_TOKEN or give a --keys-file")
    import uvicorn

    from adaptcommand.serving.app import create_app

    settings = ServeSettings(adapters_dir=adapters, model=model, cache_size=cache_size,
                             token=token, keys_file=keys_file, profiles=profiles,
                             prompt_profile=str(prompt_profile),
                             max_context_tokens=max_context_tokens,
                             max_tokens_limit=max_tokens_limit,
                             default_max_tokens=min(64, max_tokens_limit), data_dir=data,
                             device=device)
    console.print(f"loading {model} ...")
    application = create_app(settings)
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command("new-key")
def new_key(
    keys_file: Annotated[Path, typer.Option(
        "--keys-file", help="Keys file to add the key to (created when absent).")],
    user: Annotated[list[str] | None, typer.Option(
        "--user", help="A persona id the key may act for (repeat for several).")] = None,
    admin: Annotated[bool, typer.Option(
        "--admin", help="The key acts for every user and may load/unload adapters.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="Label in the server log.")] = None,
) -> None:
    """Make a random API key, add its sha256 to the keys file, print the key (only now)."""
    from adaptcommand.serving.keys import add_key

    if not user and not admin:
        raise AdaptCommandError("give --user PERSONA (one or more) or --admin")
    key = add_key(keys_file, users=user or [], admin=admin, name=name)
    console.print(f"added to {keys_file}; the key (shown once, store it now):")
    print(key)


@app.command("identify")
def identify(
    data: Annotated[Path, typer.Option(
        "--data", help="Directory from `data prepare` (dialogs_clean.jsonl, edgesplits.json).")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output directory for identify.json and confusion.png "
        "(default: DATA/identify).")] = None,
    split: Annotated[QuerySplit, typer.Option(
        "--split", help="Sessions used as queries (one query per session).")
    ] = QuerySplit.test,
) -> None:
    """Identify the speaker of held-out sessions from train-split centroids: accuracy@1/@5."""
    out = out or data / "identify"
    from adaptcommand.serving.identify import TOP_K, evaluate_identification

    report = evaluate_identification(data, out, split=split.value)
    console.print(
        f"{report['n_queries']} {split.value} sessions, {report['n_personas']} personas: "
        f"accuracy@1 {report['accuracy_at_1']:.3f}, accuracy@{TOP_K} "
        f"{report[f'accuracy_at_{TOP_K}']:.3f} (chance@1 {report['chance_at_1']:.3f})"
    )
    console.print(f"wrote {out / 'identify.json'} and {out / 'confusion.png'}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
