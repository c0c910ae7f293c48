"""Serving under load: per-user adapters against the base model alone, in the same run.

    .venv/bin/python benchmarks/serve_load.py --clients 4 --users 4 --duration 30 --max-tokens 32

Starts `adaptcommand serve` as a subprocess on 127.0.0.1 (a free port) twice with the same model:
first with `--users` per-user adapters (made here: LoRA r=8 on q/v with small random lora_B, unless
`--adapters` names a directory), then with an empty adapter directory (the base model alone).
Each time `--clients` concurrent clients send greedy chat requests for `--duration` seconds (at
most `--max-requests` in all); client i's k-th request speaks as user (i + k) mod M, so every batch
mixes adapters. One untimed warm-up request per user first loads the adapters.

A request counts as an error unless it returns 200 with the adapter it asked for. Prints and
writes (--output) requests, errors, p50/p95 latency, requests/s, mean batch size and the load
average per arm, and the adapter/base ratios. CPU numbers are only comparable on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from peft import LoraConfig, get_peft_model

from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.loading import load_model

HOST = "127.0.0.1"  # loopback only, by design
USER_TURNS = [
    "Set the lights to 40 and make them warm.",
    "It's cold, put the AC on heat at 23 degrees.",
    "Turn the TV to Netflix with volume 25.",
    "Arm the security system, I'm going out.",
    "Play some jazz on the speaker, not too loud.",
]


def make_adapters(model: str, users: int, out: Path) -> list[str]:
    """`users` distinct LoRA adapters for `model` (random lora_B; throughput does not care what
    they learned, only that each is a different adapter)."""
    base = load_model(model, device="cpu").model
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16,
                                                 target_modules=["q_proj", "v_proj"]))
    names = [f"persona_{i:03d}" for i in range(users)]
    for seed, name in enumerate(names):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for key, param in peft_model.named_parameters():
                if "lora_B" in key:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.01)
        peft_model.save_pretrained(str(out / name))
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(adapters: Path, model: str, cache_size: int, threads: int | None,
                 log: Path) -> tuple[Any, str]:
    """The server as a subprocess, returned once /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "adaptcommand", "serve", "--adapters", str(adapters),
               "--model", model, "--host", HOST, "--port", str(port),
               "--cache-size", str(cache_size)]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with log.open("w") as sink:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(1)
    process.terminate()
    raise SystemExit(f"server did not start within 600 s; see {log}")


async def one_request(client: httpx.AsyncClient, user: str | None, turn: str,
                      max_tokens: int) -> tuple[float, bool]:
    """(latency in seconds, ok): ok means 200 and the adapter asked for."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": turn}],
                            "max_tokens": max_tokens}
    if user is not None:
        body["user"] = user
    start = time.perf_counter()
    try:
        response = await client.post("/v1/chat/completions", json=body)
        ok = response.status_code == 200 and response.json()["adapter"] == (user or "base")
    except httpx.HTTPError:
        ok = False
    return time.perf_counter() - start, ok


async def drive(url: str, users: list[str | None], clients: int, duration: float,
                max_requests: int, max_tokens: int) -> dict[str, Any]:
    """Warm up every user, then `clients` closed-loop clients until time or count runs out."""
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        for user in users:
            await one_request(client, user, USER_TURNS[0], max_tokens)
        before = (await client.get("/healthz")).json()
        deadline = time.perf_counter() + duration

        async def run_client(index: int) -> None:
            nonlocal errors
            k = 0
            while time.perf_counter() < deadline and len(latencies) + errors < max_requests:
                user = users[(index + k) % len(users)]
                latency, ok = await one_request(client, user, USER_TURNS[k % len(USER_TURNS)],
                                                max_tokens)
                if ok:
                    latencies.append(latency)
                else:
                    errors += 1
                k += 1

        start = time.perf_counter()
        await asyncio.gather(*(run_client(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
        after = (await client.get("/healthz")).json()
    return {
        "requests": len(latencies) + errors,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 3),
        "p50_latency_s": round(float(np.percentile(latencies, 50)), 3) if latencies else None,
        "p95_latency_s": round(float(np.percentile(latencies, 95)), 3) if latencies else None,
        "mean_batch_size": timed_mean_batch(before, after),
    }


def timed_mean_batch(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """Mean batch size of the timed phase alone, from /healthz's running totals (warm-up
    requests run one by one and would drag the mean down)."""
    batches = after["batches_run"] - before["batches_run"]
    requests = after["requests_run"] - before["requests_run"]
    return round(requests / batches, 2) if batches > 0 else None


def run_arm(adapters: Path, users: list[str | None], args: argparse.Namespace,
            log: Path) -> dict[str, Any]:
    process, url = start_server(adapters, args.model, max(len(users), 1), args.threads, log)
    try:
        stats = asyncio.run(drive(url, users, args.clients, args.duration, args.max_requests,
                                  args.max_tokens))
        # Other work on the machine skews CPU timings; the 1-minute load average says how much.
        return {**stats, "load_average_1min": round(os.getloadavg()[0], 2)}
    finally:
        process.terminate()
        process.wait(timeout=60)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded", help="Base model name (load_model).")
    parser.add_argument("--adapters", type=Path, default=None,
                        help="Existing adapters directory (default: make --users adapters).")
    parser.add_argument("--users", type=int, default=4, help="Distinct users (adapters) asked.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent clients.")
    parser.add_argument("--duration", type=float, default=30, help="Seconds of load per arm.")
    parser.add_argument("--max-requests", type=int, default=2000,
                        help="Stop an arm after this many requests even before --duration.")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens per request.")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS for the server (default: torch's choice). On a "
                        "shared CPU use 1: spinning OpenMP threads stall badly under contention.")
    parser.add_argument("--output", type=Path, default=Path("runs/serve_load.json"),
                        help="Where the JSON results go.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.adapters is None:
            args.adapters = work / "adapters"
            names = make_adapters(args.model, args.users, args.adapters)
        else:
            names = sorted(p.name for p in args.adapters.iterdir() if p.is_dir())[: args.users]
        (work / "none").mkdir()
        adapted = run_arm(args.adapters, list(names), args, work / "adapters.log")
        base = run_arm(work / "none", [None], args, work / "base.log")

    result = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "adapters": adapted,
        "base": base,
        "zero_errors": adapted["errors"] == 0 and base["errors"] == 0,
        "ratio_adapters_to_base": {
            "requests_per_s": ratio(adapted["requests_per_s"], base["requests_per_s"]),
            "p50_latency": ratio(adapted["p50_latency_s"], base["p50_latency_s"]),
            "p95_latency": ratio(adapted["p95_latency_s"], base["p95_latency_s"]),
        },
    }
    write_json_atomic(args.output, result)
    for arm in ("adapters", "base"):
        print(f"{arm:>8}: {result[arm]}")
    print(f"zero errors: {result['zero_errors']}; adapters/base: "
          f"{result['ratio_adapters_to_base']}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
