"""Serving over HTTP with tiny-random: the API contract, who answers, guards, adapter cache."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from peft import LoraConfig, get_peft_model
from pydantic import SecretStr
from typer.testing import CliRunner

from adaptcommand.cli import app as cli_app
from adaptcommand.data.schema import Actions
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.generation import GenerationSettings
from adaptcommand.models.loading import load_model
from adaptcommand.models.prompting import render_prompt
from adaptcommand.serving import batch_runner
from adaptcommand.serving.adapter_cache import AdapterRegistry, InvalidUserError
from adaptcommand.serving.app import ADAPTER_HEADER, create_app
from adaptcommand.serving.batch_runner import Engine, Job
from adaptcommand.serving.config import ServeSettings

CHAT = "/v1/chat/completions"
USERS = ("persona_000", "persona_001")
SYSTEM = "You run a smart home."  # short: keeps tiny-model prompts, and tests, fast


def _save_adapter(peft_model, path: Path, seed: int) -> None:
    """Random lora_B (PEFT initialises it to zero, which would make every adapter the base)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(str(path))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Template adapters for tiny-random: two users and a unified one, all different."""
    root = tmp_path_factory.mktemp("adapter_store")
    base = load_model("tiny-random", device="cpu").model
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for seed, name in enumerate((*USERS, "unified")):
        _save_adapter(peft_model, root / name, seed)
    return root


@pytest.fixture
def adapters(tmp_path, store) -> Path:
    """A live adapters directory holding both users' adapters (no unified)."""
    root = tmp_path / "adapters"
    root.mkdir()
    for name in USERS:
        shutil.copytree(store / name, root / name)
    return root


@contextmanager
def serving(adapters_dir: Path, **overrides):
    overrides = {"system_prompt": SYSTEM, **overrides}
    settings = ServeSettings(adapters_dir=adapters_dir, model="tiny-random", device="cpu",
                             **overrides)
    with TestClient(create_app(settings)) as client:
        yield client


def ask(client: TestClient, user: str | None = None, text: str = "Set the lights to 40.",
        **fields):
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 8, **fields}
    if user is not None:
        body["user"] = user
    return client.post(CHAT, json=body)


def reply(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def assert_error(response, status: int, fragment: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == status and fragment in error["message"]


def assert_logged_500(response, caplog, hidden: str) -> None:
    """A 500 names an error id found in the server log with the cause; the client never gets
    the exception text."""
    assert_error(response, 500, "error id")
    error_id = response.json()["error"]["id"]
    assert error_id in response.json()["error"]["message"]
    assert hidden not in response.text
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and hidden in logged[0].getMessage() + str(logged[0].exc_info)


# --- the contract ---------------------------------------------------------------------------


def test_response_has_openai_shape_actions_and_the_adapter_used(adapters):
    with serving(adapters) as client:
        response = ask(client, "persona_000")
    body = response.json()
    assert response.status_code == 200
    assert response.headers[ADAPTER_HEADER] == body["adapter"] == "persona_000"
    assert body["object"] == "chat.completion" and body["model"] == "tiny-random"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"])
    Actions.model_validate(body["actions"])


def test_actions_are_the_validated_device_commands_of_the_reply(adapters, monkeypatch):
    text = "Setting the AC to 22 degrees in cool mode and the lights to 40."
    monkeypatch.setattr(batch_runner, "generate", lambda *a, **k: [text] * len(a[2]))
    with serving(adapters) as client:
        body = ask(client, "persona_001", max_tokens=64).json()
    assert body["choices"][0]["message"]["content"] == text
    assert body["actions"] == {"ac": {"temperature": 22, "mode": "cool"},
                               "lights": {"brightness": 40}}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_each_user_gets_their_own_adapter(adapters):
    with serving(adapters) as client:
        replies = {user: reply(ask(client, user)) for user in (*USERS, None)}
    assert len(set(replies.values())) == 3  # two adapters and the base model all differ


def test_unknown_or_missing_user_falls_back_to_unified_then_base(adapters, store):
    with serving(adapters) as client:
        assert ask(client, "persona_999").json()["adapter"] == "base"
        assert ask(client).json()["adapter"] == "base"
        shutil.copytree(store / "unified", adapters / "unified")
        assert ask(client, "persona_999").json()["adapter"] == "unified"
        assert ask(client).headers[ADAPTER_HEADER] == "unified"
        assert ask(client, "persona_000").json()["adapter"] == "persona_000"


def test_streaming_sends_openai_chunks_of_the_same_reply(adapters):
    with serving(adapters) as client:
        whole = reply(ask(client, "persona_000", max_tokens=12))
        streamed = ask(client, "persona_000", max_tokens=12, stream=True)
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in streamed.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["actions"] == {} or Actions.model_validate(chunks[-1]["actions"])
    assert {c["adapter"] for c in chunks} == {"persona_000"}


def test_models_lists_base_and_adapters_from_the_directory_now(adapters, store):
    with serving(adapters) as client:
        before = client.get("/v1/models").json()
        shutil.copytree(store / "unified", adapters / "unified")
        after = client.get("/v1/models").json()
    assert [(m["id"], m["kind"]) for m in before["data"]] == [
        ("base", "base"), ("persona_000", "user"), ("persona_001", "user")]
    assert ("unified", "unified") in [(m["id"], m["kind"]) for m in after["data"]]


def test_system_message_replaces_the_default_prompt(adapters):
    with serving(adapters) as client:
        default = reply(ask(client, "persona_000"))
        body = {"messages": [{"role": "system", "content": SYSTEM},
                             {"role": "user", "content": "Set the lights to 40."}],
                "max_tokens": 8, "user": "persona_000"}
        assert reply(client.post(CHAT, json=body)) == default
        body["messages"][0]["content"] = "You are a pirate."
        assert reply(client.post(CHAT, json=body)) != default


# --- guards ------------------------------------------------------------------------------------


def test_bearer_token_is_required_except_on_healthz(adapters):
    with serving(adapters, token=SecretStr("s3cret")) as client:
        missing = ask(client, "persona_000")
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        right = client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        health = client.get("/healthz")
    assert_error(missing, 401, "bearer token")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_error(wrong, 401, "bearer token")
    assert right.status_code == 200 and health.json() == {"status": "ok"}


@pytest.mark.parametrize("user", ["../../etc", "persona_000/../persona_001", "/etc/passwd",
                                  "..", "persona.000", "a" * 200, ""])
def test_path_like_user_ids_are_refused(adapters, user):
    with serving(adapters) as client:
        response = ask(client, user)
    if user == "":  # empty means "no user": the fallback, not an error
        assert response.json()["adapter"] == "base"
    else:
        assert_error(response, 400, "invalid persona id")


def test_registry_never_follows_a_symlink_out_of_the_directory(adapters, store, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(store / "persona_000", outside)
    (adapters / "evil").symlink_to(outside, target_is_directory=True)
    registry = AdapterRegistry(adapters)
    assert registry.path_of("evil") is None
    assert registry.select("evil").adapter == "base"
    assert "evil" not in registry.available()
    with pytest.raises(InvalidUserError):
        registry.path_of("../elsewhere")


def test_pickled_adapter_is_refused_and_the_server_keeps_serving(adapters, caplog):
    pickled = adapters / "persona_002"
    pickled.mkdir()
    shutil.copy(adapters / "persona_000" / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"not loaded, ever")
    with serving(adapters) as client:
        refused = ask(client, "persona_002")
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
        after = ask(client, "persona_000")
    assert_logged_500(refused, caplog, "safetensors")
    assert "persona_002" not in listed
    assert after.status_code == 200


def test_corrupt_adapter_fails_its_request_only(adapters, store, caplog):
    broken = adapters / "persona_002"
    shutil.copytree(store / "persona_000", broken)
    (broken / "adapter_model.safetensors").write_bytes(b"\x00garbage")
    with serving(adapters, cache_size=1) as client:
        failed = ask(client, "persona_002")
        cache = client.app.state.server.engine.cache
        assert cache.loaded == []
        base, own = ask(client), ask(client, "persona_000")
    assert_logged_500(failed, caplog, "unreadable adapter")
    assert base.json()["adapter"] == "base" and own.json()["adapter"] == "persona_000"


def test_malformed_and_invalid_bodies_get_json_errors(adapters):
    with serving(adapters) as client:
        broken = client.post(CHAT, content=b'{"messages": [', headers={
            "Content-Type": "application/json"})
        not_object = client.post(CHAT, json=["hello"])
        unknown_field = client.post(CHAT, json={"messages": [{"role": "user", "content": "hi"}],
                                                "max_token": 5})
        bad_role = client.post(CHAT, json={"messages": [{"role": "robot", "content": "hi"}]})
        ends_with_assistant = client.post(CHAT, json={"messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
        not_found = client.get("/v2/nothing")
    assert_error(broken, 400, "malformed JSON")
    assert_error(not_object, 400, "JSON object")
    assert_error(unknown_field, 422, "max_token")
    assert_error(bad_role, 422, "messages.0.role")
    assert_error(ends_with_assistant, 400, "end with a user message")
    assert_error(not_found, 404, "Not Found")


def test_oversize_bodies_get_413_declared_or_streamed(adapters):
    padding = "x" * 5000
    with serving(adapters, max_body_bytes=4096) as client:
        declared = ask(client, "persona_000", text=padding)
        chunked = client.post(CHAT, content=iter([b'{"messages": "', padding.encode(), b'"}']),
                              headers={"Content-Type": "application/json"})
        small = ask(client, "persona_000")
    assert_error(declared, 413, "4096 bytes")
    assert_error(chunked, 413, "4096 bytes")
    assert small.status_code == 200


def test_max_tokens_over_the_limit_is_refused_not_clamped(adapters):
    with serving(adapters, max_tokens_limit=16, default_max_tokens=8) as client:
        over = ask(client, "persona_000", max_tokens=17)
        at_limit = ask(client, "persona_000", max_tokens=16)
        zero = ask(client, "persona_000", max_tokens=0)
    assert_error(over, 400, "limit of 16")
    assert at_limit.status_code == 200
    assert at_limit.json()["usage"]["completion_tokens"] <= 16
    assert_error(zero, 422, "max_tokens")


def test_failing_generation_returns_500_and_the_next_request_works(adapters, monkeypatch,
                                                                  caplog):
    real = batch_runner.generate
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_runner, "generate", flaky)
    with serving(adapters) as client:
        failed = ask(client, "persona_000")
        recovered = ask(client, "persona_000")
    assert_logged_500(failed, caplog, "simulated out of memory")
    assert recovered.status_code == 200 and reply(recovered)


def test_cli_refuses_a_public_host_without_a_token(adapters):
    result = CliRunner().invoke(cli_app, ["serve", "--adapters", str(adapters),
                                          "--model", "tiny-random", "--host", "0.0.0.0"])
    assert isinstance(result.exception, AdaptCommandError)
    assert "without a token" in str(result.exception)


# --- adapter cache and batching ---------------------------------------------------------------


def test_cache_of_one_unloads_the_previous_adapter(adapters):
    with serving(adapters, cache_size=1) as client:
        cache = client.app.state.server.engine.cache
        first = reply(ask(client, "persona_000"))
        assert cache.loaded == ["persona_000"]
        ask(client, "persona_001")
        assert cache.loaded == ["persona_001"]
        assert list(cache.model.peft_config) == ["persona_001"]
        assert reply(ask(client, "persona_000")) == first  # reloaded, same weights


def test_cache_evicts_the_least_recently_used(adapters, store):
    shutil.copytree(store / "unified", adapters / "unified")
    with serving(adapters, cache_size=2) as client:
        cache = client.app.state.server.engine.cache
        for user in ("persona_000", "persona_001", "persona_000", "unified"):
            ask(client, user)
        assert cache.loaded == ["persona_000", "unified"]


def test_adapter_created_after_startup_is_served(adapters, store):
    late = "persona_007"
    with serving(adapters) as client:
        before = ask(client, late).json()["adapter"]
        shutil.copytree(store / "persona_001", adapters / late)
        after = ask(client, late)
        expected = reply(ask(client, "persona_001"))
    assert before == "base"
    assert after.json()["adapter"] == late
    assert reply(after) == expected  # same weights as the adapter it was copied from


def test_rewritten_adapter_is_reloaded(adapters, store):
    shutil.copytree(store / "unified", adapters / "unified")
    with serving(adapters) as client:
        original = reply(ask(client, "persona_000"))
        shutil.rmtree(adapters / "persona_000")
        shutil.copytree(store / "unified", adapters / "persona_000")
        retrained = reply(ask(client, "persona_000"))
        unified = reply(ask(client, "unified"))
    assert retrained == unified != original


def test_mixed_adapter_batch_equals_one_adapter_at_a_time(adapters):
    loaded = load_model("tiny-random", device="cpu")
    engine = Engine(loaded, cache_size=4)
    registry = AdapterRegistry(adapters)
    settings = GenerationSettings(max_new_tokens=10)
    texts = ["Set the lights to 40.", "Turn the AC to heat at 24 degrees with fan speed 2.",
             "TV on Netflix.", "Arm the security system."]
    jobs = [Job(render_prompt(loaded.tokenizer, [{"role": "user", "text": text}], SYSTEM),
                registry.select(user), settings)
            for text, user in zip(texts, ["persona_000", "persona_001", None, "persona_000"],
                                  strict=True)]
    alone = [engine.run([job])[0] for job in jobs]
    assert engine.run(jobs) == alone
    assert len(set(alone[:3])) == 3  # three adapters (incl. base) really in play


def test_concurrent_requests_for_different_users_share_one_batch(adapters):
    users = ["persona_000", "persona_001", None]
    with serving(adapters) as client:
        alone = [reply(ask(client, user)) for user in users]
    # A long wait, but a batch closes as soon as it is full: robust on a busy machine, not slow.
    with serving(adapters, batch_wait_ms=5000, max_batch_size=len(users)) as client:
        with ThreadPoolExecutor(len(users)) as pool:
            together = list(pool.map(lambda user: reply(ask(client, user)), users))
        batcher = client.app.state.server.batcher
    assert together == alone
    assert (batcher.batches_run, batcher.jobs_run) == (1, len(users))
