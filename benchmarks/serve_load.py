"""Serving under load: many users' adapters through an LRU cache, against the base model alone.

    .venv/bin/python benchmarks/serve_load.py --model tiny-random --users 50 --cache-size 8 \
        --clients 4 --duration 20 --max-tokens 16 --threads 1

Starts `adaptcommand serve` as a subprocess on 127.0.0.1 (a free port) twice with the same model
and per-user keys on (a keys file: one key per user, each request sent with its user's key; the
base arm uses an admin key): first with `--users` adapters (made here: LoRA r=8 on q/v with small
random lora_B, unless `--adapters` names a directory) and `--cache-size` of them loaded at most,
then with an empty adapter directory (the base model alone). Against each server it runs the arms
{uniform, skewed} traffic x {plain, streamed} replies for `--duration` seconds each (at most
`--max-requests`), `--clients` closed-loop clients. Uniform: every request picks a user uniformly
at random; skewed: Zipf-like, user k with weight 1/(k+1)^1.1 (the few heavy users stay cached,
the long tail misses). Seeded, so two runs send the same sequence. One untimed warm-up request
first.

A request counts as an error unless it returns 200 with the adapter it asked for (a stream must
end with `[DONE]` and no error event). Prints and writes (--output) per arm: requests, errors,
p50/p95 latency (a stream's: to its last event; and its time to first text), requests/s, the
load average, and the adapters/base ratios. CPU numbers are only comparable on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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
from adaptcommand.serving.keys import KeyEntry, KeysFile, new_key

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


def write_keys(path: Path, users: list[str]) -> dict[str | None, str]:
    """A keys file with one key per user and an admin key (under None); returns the keys."""
    keys: dict[str | None, str] = {}
    entries = []
    for user in [*users, None]:
        keys[user], digest = new_key()
        entries.append(KeyEntry(sha256=digest, users=[user] if user else [], admin=user is None))
    write_json_atomic(path, KeysFile(keys=entries).model_dump())
    return keys


def start_server(adapters: Path, model: str, cache_size: int, threads: int | None,
                 keys_file: Path, log: Path) -> tuple[Any, str]:
    """The server as a subprocess, returned once /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "adaptcommand", "serve", "--adapters", str(adapters),
               "--model", model, "--host", HOST, "--port", str(port),
               "--cache-size", str(cache_size), "--keys-file", str(keys_file)]
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


async def one_request(client: httpx.AsyncClient, user: str | None, key: str, turn: str,
                      max_tokens: int, stream: bool) -> tuple[float, float | None, bool]:
    """(latency in seconds, time to first text or None, ok): ok means 200 with the adapter
    asked for, and for a stream a clean end."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": turn}],
                            "max_tokens": max_tokens, "stream": stream}
    if user is not None:
        body["user"] = user
    headers = {"Authorization": f"Bearer {key}"}
    start = time.perf_counter()
    first: float | None = None
    try:
        if not stream:
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            ok = response.status_code == 200 and response.json()["adapter"] == (user or "base")
            return time.perf_counter() - start, None, ok
        async with client.stream("POST", "/v1/chat/completions", json=body,
                                 headers=headers) as response:
            ok = (response.status_code == 200
                  and response.headers.get("x-adaptcommand-adapter") == (user or "base"))
            last = ""
            async for line in response.aiter_lines():
                if not line:
                    continue
                last = line
                if first is None and '"content":"' in line and '"content":""' not in line:
                    first = time.perf_counter() - start
                ok = ok and '"error"' not in line
            ok = ok and last == "data: [DONE]"
    except httpx.HTTPError:
        ok = False
    return time.perf_counter() - start, first, ok


def pick_users(users: list[str | None], traffic: str, count: int, seed: int) -> list[str | None]:
    """The users of `count` requests: uniform, or Zipf-like skewed (weight 1/(k+1)^1.1)."""
    rng = random.Random(seed)
    if traffic == "uniform":
        return [rng.choice(users) for _ in range(count)]
    weights = [1 / (k + 1) ** 1.1 for k in range(len(users))]
    return rng.choices(users, weights=weights, k=count)


async def drive(url: str, users: list[str | None], keys: dict[str | None, str], traffic: str,
                stream: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One arm: `clients` closed-loop clients until time or count runs out."""
    latencies: list[float] = []
    firsts: list[float] = []
    errors = 0
    plan = pick_users(users, traffic, args.max_requests, args.seed)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await one_request(client, users[0], keys[users[0]], USER_TURNS[0], args.max_tokens,
                          stream)
        deadline = time.perf_counter() + args.duration
        sent = 0

        async def run_client() -> None:
            nonlocal errors, sent
            while time.perf_counter() < deadline and sent < len(plan):
                user = plan[sent]
                turn = USER_TURNS[sent % len(USER_TURNS)]
                sent += 1
                latency, first, ok = await one_request(client, user, keys[user], turn,
                                                       args.max_tokens, stream)
                if ok:
                    latencies.append(latency)
                    if first is not None:
                        firsts.append(first)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(run_client() for _ in range(args.clients)))
        elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies) + errors,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 3),
        "p50_latency_s": percentile(latencies, 50),
        "p95_latency_s": percentile(latencies, 95),
        "p50_first_text_s": percentile(firsts, 50) if stream else None,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


def run_server_arms(adapters: Path, users: list[str | None], cache_size: int,
                    args: argparse.Namespace, work: Path, label: str) -> dict[str, Any]:
    """Start one server, run every traffic x stream arm against it."""
    keys = write_keys(work / f"{label}-keys.json", [u for u in users if u])  # None: admin
    process, url = start_server(adapters, args.model, cache_size, args.threads,
                                work / f"{label}-keys.json", work / f"{label}.log")
    try:
        return {f"{traffic}/{'stream' if stream else 'plain'}":
                asyncio.run(drive(url, users, keys, traffic, stream, args))
                for traffic in ("uniform", "skewed") for stream in (False, True)}
    finally:
        process.terminate()
        process.wait(timeout=60)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-random", help="Base model name (load_model).")
    parser.add_argument("--adapters", type=Path, default=None,
                        help="Existing adapters directory (default: make --users adapters).")
    parser.add_argument("--users", type=int, default=50, help="Distinct users (adapters) asked.")
    parser.add_argument("--cache-size", type=int, default=8, help="Adapters loaded at most.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent clients.")
    parser.add_argument("--duration", type=float, default=20, help="Seconds of load per arm.")
    parser.add_argument("--max-requests", type=int, default=2000,
                        help="Stop an arm after this many requests even before --duration.")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens per request.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the users' sequence.")
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
        adapted = run_server_arms(args.adapters, list(names), args.cache_size, args, work,
                                  "adapters")
        base = run_server_arms(work / "none", [None], 1, args, work, "base")

    errors = sum(arm["errors"] for arms in (adapted, base) for arm in arms.values())
    result = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "adapters": adapted,
        "base": base,
        "zero_errors": errors == 0,
        "ratio_adapters_to_base": {
            arm: {"requests_per_s": ratio(adapted[arm]["requests_per_s"],
                                          base[arm]["requests_per_s"]),
                  "p50_latency": ratio(adapted[arm]["p50_latency_s"], base[arm]["p50_latency_s"]),
                  "p95_latency": ratio(adapted[arm]["p95_latency_s"], base[arm]["p95_latency_s"])}
            for arm in adapted},
    }
    write_json_atomic(args.output, result)
    print(json.dumps(result, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
