"""Serving conventions through the real app: vLLM's model field and runtime adapters, per-user
keys, routines, the context limit in tokens, an open health check that says nothing, real
streaming over a loopback server, and faults that must not stop the server answering others."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from adaptcommand.cli import app as cli_app
from adaptcommand.fileio import atomic_dir, write_json_atomic, write_jsonl_atomic
from adaptcommand.serving import batch_runner
from adaptcommand.serving.app import ADAPTER_HEADER, create_app
from adaptcommand.serving.config import ServeSettings
from adaptcommand.serving.keys import hash_key
from adaptcommand.serving.streaming import StreamChannel
from test_serving import CHAT, SYSTEM, adapters, ask, assert_error, reply, serving, store

__all__ = ["adapters", "store"]  # fixtures shared with test_serving
ADMIN = "admin-key"
KEYS = {"k0": ["persona_000"], "k1": ["persona_001"]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def write_keys(path: Path, keys: dict[str, list[str]], admin: str | None = ADMIN) -> Path:
    entries = [{"sha256": hash_key(key), "users": users, "name": key}
               for key, users in keys.items()]
    if admin:
        entries.append({"sha256": hash_key(admin), "admin": True, "name": "admin"})
    write_json_atomic(path, {"keys": entries})
    return path


def chat(client, key: str | None = None, **fields):
    body = {"messages": [{"role": "user", "content": "Set the lights to 40."}],
            "max_tokens": 8, **fields}
    return client.post(CHAT, json=body, headers=bearer(key) if key else {})


# --- vLLM conventions ---------------------------------------------------------------------------


def test_model_field_names_the_adapter_as_vllm_does(adapters):
    with serving(adapters) as client:
        by_user = reply(ask(client, "persona_001"))
        by_model = ask(client, model="persona_001")
        base = ask(client, "persona_001", model="base")
        own_name = ask(client, "persona_001", model="tiny-random")  # base model id: user decides
        missing = ask(client, model="persona_404")
        clash = ask(client, "persona_001", model="persona_000")
        listed = client.get("/v1/models").json()["data"]
    assert reply(by_model) == by_user and by_model.json()["model"] == "persona_001"
    assert by_model.json()["adapter"] == "persona_001"
    assert base.json()["adapter"] == "base" and reply(base) != by_user
    assert own_name.json()["adapter"] == "persona_001"
    assert_error(missing, 404, "does not exist")
    assert_error(clash, 400, "model names adapter")
    assert listed[0] == {"id": "base", "object": "model", "created": 0, "owned_by": "adaptcommand",
                         "kind": "base", "root": "tiny-random", "parent": None}
    assert {(m["id"], m["parent"]) for m in listed[1:]} == {("persona_000", "base"),
                                                            ("persona_001", "base")}


def test_runtime_load_and_unload_need_an_admin_and_stay_under_the_directory(adapters, tmp_path):
    keys = write_keys(tmp_path / "keys.json", KEYS)
    outside = tmp_path / "outside"
    shutil.copytree(adapters / "persona_000", outside)
    with serving(adapters, keys_file=keys) as client:
        admin = bearer(ADMIN)
        expected = reply(chat(client, ADMIN, user="persona_001"))
        by_user_key = client.post("/v1/load_lora_adapter", headers=bearer("k0"),
                                  json={"lora_name": "alice", "lora_path": "persona_001"})
        loaded = client.post("/v1/load_lora_adapter", headers=admin,
                             json={"lora_name": "alice", "lora_path": "persona_001"})
        alice = chat(client, ADMIN, model="alice")
        listed = [m["id"] for m in client.get("/v1/models", headers=admin).json()["data"]]
        escapes = [client.post("/v1/load_lora_adapter", headers=admin,
                               json={"lora_name": "bob", "lora_path": path})
                   for path in ("../outside", str(outside), ".", "persona_404")]
        unloaded = client.post("/v1/unload_lora_adapter", headers=admin,
                               json={"lora_name": "persona_000"})
        fallback = chat(client, ADMIN, user="persona_000")
        after = [m["id"] for m in client.get("/v1/models", headers=admin).json()["data"]]
        again = client.post("/v1/unload_lora_adapter", headers=admin,
                            json={"lora_name": "persona_000"})
        client.post("/v1/load_lora_adapter", headers=admin,
                    json={"lora_name": "persona_000", "lora_path": "persona_000"})
        back = chat(client, ADMIN, user="persona_000")
    assert_error(by_user_key, 403, "admin key")
    assert loaded.json() == {"status": "loaded", "lora_name": "alice"}
    assert reply(alice) == expected and alice.json()["adapter"] == "alice"
    assert "alice" in listed
    for refused in escapes:
        assert_error(refused, 400, "lora_path")
    assert unloaded.status_code == 200 and fallback.json()["adapter"] == "base"
    assert "persona_000" not in after
    assert_error(again, 404, "no adapter named")
    assert back.json()["adapter"] == "persona_000"


def test_runtime_loading_is_refused_without_any_admin_credential(adapters):
    with serving(adapters) as client:
        refused = client.post("/v1/load_lora_adapter",
                              json={"lora_name": "alice", "lora_path": "persona_001"})
    assert_error(refused, 403, "admin key")


# --- users apart ----------------------------------------------------------------------------------


def test_a_users_key_acts_only_for_that_user_and_reveals_no_other(adapters, tmp_path):
    keys = write_keys(tmp_path / "keys.json", KEYS)
    (adapters / "persona_001" / "profile.json").write_text(json.dumps(
        {"persona_id": "persona_001", "routines": []}))
    with serving(adapters, keys_file=keys) as client:
        own = chat(client, "k0", user="persona_000")
        implicit = chat(client, "k0")
        other = chat(client, "k0", user="persona_001")  # exists
        ghost = chat(client, "k0", user="persona_777")  # does not exist
        other_model = chat(client, "k0", model="persona_001")
        ghost_model = chat(client, "k0", model="persona_777")
        identify = chat(client, "k0", identify_user=True)
        routines = [client.get(f"/v1/users/{user}/routines", headers=bearer("k0"))
                    for user in ("persona_001", "persona_777")]
        listed = [m["id"] for m in client.get("/v1/models", headers=bearer("k0")).json()["data"]]
        unknown_key = chat(client, "nope", user="persona_000")
        admin = chat(client, ADMIN, user="persona_001")
    assert own.json()["adapter"] == "persona_000" == implicit.json()["adapter"]
    pairs = [(other, ghost), (other_model, ghost_model), tuple(routines)]
    for exists, missing in pairs:
        assert exists.status_code == missing.status_code == 403
        assert (exists.text.replace("persona_001", "X")
                == missing.text.replace("persona_777", "X"))
    assert_error(identify, 403, "every user")
    assert listed == ["base", "persona_000"]
    assert_error(unknown_key, 401, "bearer token")
    assert admin.json()["adapter"] == "persona_001"


def test_keys_rotate_without_restart_and_a_broken_rewrite_keeps_the_old_keys(adapters, tmp_path):
    keys = write_keys(tmp_path / "keys.json", KEYS)
    with serving(adapters, keys_file=keys) as client:
        before = chat(client, "k0")
        write_keys(keys, {"k0-new": ["persona_000"], "k1": ["persona_001"]})
        old, new = chat(client, "k0"), chat(client, "k0-new")
        keys.write_text('{"keys": [{"sha256": "not hex"}]}')
        still = chat(client, "k0-new")
        client.app.state.server.keys.reload()  # what SIGHUP calls
        after_hup = chat(client, "k1", user="persona_001")
    assert before.status_code == 200
    assert_error(old, 401, "bearer token")
    assert new.json()["adapter"] == "persona_000"
    assert still.status_code == 200 and after_hup.status_code == 200


def test_sighup_rereads_the_keys_file(adapters, tmp_path):
    app = create_app(ServeSettings(adapters_dir=adapters, model="tiny-random", device="cpu",
                                   keys_file=write_keys(tmp_path / "keys.json", KEYS)))
    server, calls = app.state.server, []
    server.keys.reload = lambda **kwargs: calls.append(kwargs)

    async def hang_up() -> None:
        async with server.lifespan(app):  # the handler lives as long as the app
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(0.2)

    asyncio.run(hang_up())
    assert calls == [{}]


def test_new_key_cli_adds_a_hashed_key_the_server_accepts(adapters, tmp_path):
    keys = tmp_path / "keys.json"
    runner = CliRunner()
    made = [runner.invoke(cli_app, ["new-key", "--keys-file", str(keys), *args])
            for args in (["--user", "persona_001"], ["--admin", "--name", "ops"])]
    assert [result.exit_code for result in made] == [0, 0]
    user_key, admin_key = (result.output.strip().splitlines()[-1] for result in made)
    stored = json.loads(keys.read_text())["keys"]
    assert [e["sha256"] for e in stored] == [hash_key(user_key), hash_key(admin_key)]
    assert user_key not in keys.read_text() and stored[1]["admin"] is True
    with serving(adapters, keys_file=keys) as client:
        own = chat(client, user_key)
        other = chat(client, user_key, user="persona_000")
    assert own.json()["adapter"] == "persona_001"
    assert_error(other, 403, "may not act for")
    refused = runner.invoke(cli_app, ["new-key", "--keys-file", str(keys)])
    assert refused.exit_code != 0


def test_a_bad_keys_file_stops_startup_naming_the_field(adapters, tmp_path):
    bad = tmp_path / "keys.json"
    bad.write_text('{"keys": [{"sha256": "abc", "users": []}]}')
    with pytest.raises(Exception, match=r"keys.json.*keys\.0\.sha256"):
        create_app(ServeSettings(adapters_dir=adapters, model="tiny-random", device="cpu",
                                 keys_file=bad))


def test_routines_come_from_profile_json_or_the_profiles_file(adapters, tmp_path, caplog):
    routine = {"triggers": {"time_of_day": "evening"}, "actions": {"lights": {"brightness": 40}},
               "support": 3}
    (adapters / "persona_000" / "profile.json").write_text(json.dumps(
        {"persona_id": "persona_000", "sessions_used": 5, "routines": [routine],
         "common_settings": {}}))
    (adapters / "persona_001" / "profile.json").write_text('{"routines": [{"triggers": 1}]}')
    with serving(adapters) as client:
        found = client.get("/v1/users/persona_000/routines")
        missing = client.get("/v1/users/persona_404/routines")
        broken = client.get("/v1/users/persona_001/routines")
    assert found.json() == {"persona_id": "persona_000", "routines": [routine]}
    assert_error(missing, 404, "no mined routines")
    assert_error(broken, 500, "error id")
    assert "profile.json" not in broken.text
    assert any("persona_001/profile.json" in r.getMessage() for r in caplog.records)
    lines = tmp_path / "mined" / "routines.jsonl"
    write_jsonl_atomic(lines, [{"routines": []}, {"routines": [routine]}])
    with serving(adapters, profiles=lines) as client:
        from_file = client.get("/v1/users/persona_001/routines").json()
    assert from_file["routines"] == [routine]


def test_prompt_over_the_context_is_a_400_counted_in_tokens(adapters):
    long_text = "Set the lights to 40 and the AC to 22. " * 20
    with serving(adapters, max_context_tokens=64) as client:
        short = ask(client, "persona_000")
        too_long = ask(client, "persona_000", text=long_text)
        streamed = ask(client, "persona_000", text=long_text, stream=True)
        after = ask(client, "persona_001")
    assert short.status_code == 200 and after.status_code == 200
    for refused in (too_long, streamed):
        assert_error(refused, 400, "context is 64 tokens")
        assert "max_tokens 8" in refused.json()["error"]["message"]


def test_healthz_says_only_ok(adapters, tmp_path):
    keys = write_keys(tmp_path / "keys.json", KEYS)
    with serving(adapters, keys_file=keys) as client:
        chat(client, "k0")
        health = client.get("/healthz")
        client.portal.call(client.app.state.server.batcher.stop)  # the worker is gone
        down = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert down.status_code == 503 and down.json() == {"status": "not ok"}


# --- real streaming and faults over a loopback server ----------------------------------------


@contextmanager
def live_server(adapters_dir: Path, **overrides):
    """The app behind uvicorn on a free loopback port (TestClient buffers whole responses)."""
    settings = ServeSettings(adapters_dir=adapters_dir, model="tiny-random", device="cpu",
                             system_prompt=SYSTEM, **overrides)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def events(lines) -> list[dict]:
    return [json.loads(line.removeprefix("data: ")) for line in lines
            if line.startswith("data: {")]


@pytest.fixture
def paused_stream(monkeypatch):
    """Generation pauses after its first piece of text until `gate` is set."""
    waiting, gate, channels = threading.Event(), threading.Event(), []
    real_put = StreamChannel.put

    def put(self: StreamChannel, text: str) -> None:
        first = not waiting.is_set()
        if first:
            channels.append(self)
            waiting.set()
        real_put(self, text)
        if first:
            assert gate.wait(60)

    monkeypatch.setattr(StreamChannel, "put", put)
    return waiting, gate, channels


def test_stream_sends_the_first_piece_before_generation_ends(adapters, paused_stream):
    waiting, gate, _ = paused_stream
    body = {"messages": [{"role": "user", "content": "Set the lights to 40."}],
            "max_tokens": 12, "user": "persona_000"}
    with live_server(adapters) as (_, url):
        whole = httpx.post(url + CHAT, json=body, timeout=60).json()
        first_while_paused = None
        with httpx.stream("POST", url + CHAT, json={**body, "stream": True},
                          timeout=60) as response:
            lines = []
            for line in response.iter_lines():
                lines.append(line)
                chunk = events([line])
                if first_while_paused is None and chunk and chunk[0]["choices"][0]["delta"].get(
                        "content"):
                    first_while_paused = waiting.is_set() and not gate.is_set()
                    gate.set()
    assert first_while_paused is True  # the client had text while decoding was still paused
    chunks = events(lines)
    assert [line for line in lines if line][-1] == "data: [DONE]"
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == (
        whole["choices"][0]["message"]["content"])
    assert chunks[-1]["usage"]["completion_tokens"] >= 1
    assert chunks[-1]["actions"] == whole["actions"]
    assert response.headers[ADAPTER_HEADER] == "persona_000"


def test_client_leaving_mid_stream_stops_its_generation_and_others_are_served(
        adapters, paused_stream, monkeypatch):
    waiting, gate, channels = paused_stream
    lengths = []
    real = batch_runner.stream_generate

    def counted(*args, **kwargs):
        tokens, prompt = real(*args, **kwargs)
        lengths.append(len(tokens))
        return tokens, prompt

    monkeypatch.setattr(batch_runner, "stream_generate", counted)
    body = {"messages": [{"role": "user", "content": "Set the lights to 40."}],
            "max_tokens": 64, "user": "persona_000"}
    with live_server(adapters) as (_, url):
        full = httpx.post(url + CHAT, json=body, timeout=60).json()["usage"]["completion_tokens"]
        with httpx.stream("POST", url + CHAT, json={**body, "stream": True},
                          timeout=60) as response:
            for line in response.iter_lines():
                if events([line]) and waiting.is_set():
                    break  # leave with the reply half sent
        deadline = time.monotonic() + 30
        while not channels[0].cancelled.is_set():
            assert time.monotonic() < deadline, "the server never noticed the client left"
            time.sleep(0.02)
        gate.set()
        other = httpx.post(url + CHAT, json={**body, "user": "persona_001"}, timeout=60)
    assert other.status_code == 200 and other.json()["adapter"] == "persona_001"
    assert full > 3 and lengths and lengths[0] < full


def test_malformed_adapter_dropped_in_and_adapter_replaced_while_serving(adapters, store,
                                                                          caplog):
    """Others keep getting answers; the replaced user always gets one of their two versions."""
    with serving(adapters) as client:
        versions = {reply(ask(client, "persona_000")), reply(ask(client, "persona_001"))}
        first = reply(ask(client, "persona_001"))
        stop = threading.Event()

        def replace_repeatedly() -> int:
            count = 0
            while not stop.is_set():
                source = store / ("persona_001" if count % 2 else "persona_000")
                with atomic_dir(adapters / "persona_000") as tmp:
                    for item in source.iterdir():
                        shutil.copy(item, tmp / item.name)
                count += 1
            return count

        with ThreadPoolExecutor(2) as pool:
            replacer = pool.submit(replace_repeatedly)
            broken = adapters / "persona_009"
            broken.mkdir()
            shutil.copy(store / "persona_000" / "adapter_config.json", broken)
            (broken / "adapter_model.safetensors").write_bytes(b"\x00not safetensors")
            answers = [ask(client, user) for user in ("persona_000", "persona_009",
                                                      "persona_001", "persona_000") * 3]
            stop.set()
            replaced = replacer.result()
    assert replaced > 1
    for user, answer in zip(("persona_000", "persona_009", "persona_001", "persona_000") * 3,
                            answers, strict=True):
        if user == "persona_009":
            assert_error(answer, 500, "error id")
            continue
        assert answer.json()["adapter"] == user  # never the fallback
        assert reply(answer) in versions if user == "persona_000" else reply(answer) == first
