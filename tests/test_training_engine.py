"""The multi-adapter engine against the usual one-adapter-at-a-time PEFT loop, on a tiny Llama."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from transformers import LlamaConfig, LlamaForCausalLM, get_scheduler

from adaptcommand.training import engine
from adaptcommand.training.batching import (
    IGNORE_INDEX,
    Example,
    PackedBatch,
    epoch_batches,
    pack,
    planned_steps,
)
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.engine import (
    AdapterJob,
    AdapterResult,
    adapters_per_step,
    early_stopping,
    shared_prefix_length,
    train_adapters,
)
from adaptcommand.training.export import WEIGHTS_FILE
from adaptcommand.training.multi_lora import MultiLora

VOCAB = 48


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models run fastest on one thread; two threads spin-wait badly on a busy 2-core box
    (measured: 0.7 s against 59 s for the same test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


SYSTEM = tuple(range(1, 11))  # every prompt opens with it, like the real system prompt


def synthetic_examples(n: int, seed: int, prefix: tuple[int, ...] = SYSTEM) -> list[Example]:
    """Prompts of varied length followed by a short target that depends on the persona."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        prompt = [*prefix, *(rng.randrange(VOCAB) for _ in range(rng.randint(3, 20)))]
        target = [(seed * 7 + i) % VOCAB for i in range(rng.randint(2, 5))]
        examples.append(Example(tuple(prompt + target),
                                tuple([IGNORE_INDEX] * len(prompt) + target)))
    return examples


def synthetic_sessions(n: int, seed: int) -> list[Example]:
    """Session-style examples: the system prefix, then 1-3 (user tokens, supervised reply)
    rounds, so labels hold several supervised spans separated by masked tokens."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        ids, labels = list(SYSTEM), [IGNORE_INDEX] * len(SYSTEM)
        for turn in range(rng.randint(1, 3)):
            user = [rng.randrange(VOCAB) for _ in range(rng.randint(2, 8))]
            reply = [(seed * 7 + turn * 5 + i) % VOCAB for i in range(rng.randint(2, 5))]
            ids += user + reply
            labels += [IGNORE_INDEX] * len(user) + reply
        examples.append(Example(tuple(ids), tuple(labels)))
    return examples


def engine_config(overrides: dict[str, object] | None = None) -> TrainingConfig:
    """The engine tests' config; `overrides` are dotted (`{"optimizer.epochs": 1}`)."""
    base = {"adapter.r": 4, "adapter.alpha": 8, "adapter.dropout": 0.0,
            "optimizer.learning_rate": 2e-2, "optimizer.epochs": 3, "optimizer.batch_size": 2,
            "early_stopping.patience": None, "throughput.adapters_per_step": 2, "seed": 3,
            "data.length_bucket_batches": 2, "optimizer.warmup_ratio": 0.2,
            "throughput.pack_padding_slack": 100.0}
    return TrainingConfig().updated(base | (overrides or {}))


def run_engine(model: LlamaForCausalLM, jobs: list[AdapterJob],
               config: TrainingConfig) -> dict[str, AdapterResult]:
    adapter = config.adapter
    lora = MultiLora(model, adapter.target_modules, adapter.r, adapter.alpha, adapter.dropout)
    results: dict[str, AdapterResult] = {}
    train_adapters(model, lora, jobs, config, lambda r: results.__setitem__(r.name, r))
    return results


Weights = dict[str, torch.Tensor]


def peft_solo(base: LlamaForCausalLM, job: AdapterJob,
              config: TrainingConfig) -> tuple[list[float], list[float], list[Weights]]:
    """The usual loop: PEFT model, its own HF loss, AdamW, clipping, HF schedule, same batches.

    Returns per-epoch train losses, val losses and LoRA weights (PEFT's saved key names)."""
    adapter, optimizer_settings = config.adapter, config.optimizer
    init = MultiLora(copy.deepcopy(base), adapter.target_modules, adapter.r, adapter.alpha, 0.0)
    init.add_adapter(job.name, config.seed)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(
        r=adapter.r, lora_alpha=adapter.alpha, target_modules=adapter.target_modules,
        lora_dropout=0.0))
    set_peft_model_state_dict(model, init.state_of(job.name))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=optimizer_settings.learning_rate,
                                  weight_decay=optimizer_settings.weight_decay)
    batch_size, epochs = optimizer_settings.batch_size, optimizer_settings.epochs
    planned = planned_steps(job.train, batch_size, config.seed, job.name, epochs,
                            config.data.length_bucket_batches)
    scheduler = get_scheduler(optimizer_settings.lr_scheduler, optimizer,
                              math.ceil(planned * optimizer_settings.warmup_ratio), planned)
    train_losses, val_losses, states = [], [], []
    for epoch in range(epochs):
        model.train()
        losses = []
        for group in epoch_batches(job.train, batch_size, config.seed, job.name, epoch,
                                   config.data.length_bucket_batches):
            batch = pack([group], torch.device("cpu"))
            loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         labels=batch.labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, optimizer_settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        train_losses.append(sum(losses) / len(losses))
        model.eval()
        with torch.no_grad():
            batch = pack([job.val], torch.device("cpu"))
            val_losses.append(model(input_ids=batch.input_ids,
                                    attention_mask=batch.attention_mask,
                                    labels=batch.labels).loss.item())
        states.append({k.replace(".default", ""): v.clone()
                       for k, v in model.state_dict().items() if "lora_" in k})
    return train_losses, val_losses, states


def make_jobs(sessions: bool = False) -> list[AdapterJob]:
    # Different sizes: adapters finish at different steps, so a freed slot is refilled mid-run.
    make = synthetic_sessions if sessions else synthetic_examples
    return [AdapterJob(f"p{i}", make(n, seed=i), make(3, seed=10 + i))
            for i, n in enumerate([5, 9, 7])]


@pytest.mark.parametrize("sessions", [False, True], ids=["turn", "session"])
def test_engine_matches_training_each_adapter_alone_with_peft(sessions: bool) -> None:
    base = tiny_model()
    config = engine_config()
    results = run_engine(copy.deepcopy(base), make_jobs(sessions), config)
    assert set(results) == {"p0", "p1", "p2"}
    for job in make_jobs(sessions):
        train_losses, val_losses, states = peft_solo(base, job, config)
        got = results[job.name]
        assert got.steps == planned_steps(job.train, 2, config.seed, job.name, 3,
                                          config.data.length_bucket_batches)
        if not sessions:
            assert got.steps == math.ceil(len(job.train) / 2) * 3
        assert got.train_loss == pytest.approx(train_losses, abs=1e-5)
        assert got.val_loss == pytest.approx(val_losses, abs=1e-5)
        assert got.best_epoch == 1 + min(range(3), key=val_losses.__getitem__)
        expected = states[got.best_epoch - 1]
        assert set(got.state) == set(expected)
        for key, tensor in expected.items():
            torch.testing.assert_close(got.state[key], tensor, atol=1e-5, rtol=1e-4)
        assert any(t.abs().sum() > 0 for k, t in got.state.items() if "lora_B" in k)


def test_a_one_epoch_run_skips_the_val_loss_it_cannot_use_unless_asked() -> None:
    base = tiny_model()
    one = {"optimizer.epochs": 1}
    skipped = run_engine(copy.deepcopy(base), make_jobs(), engine_config(one))
    asked = run_engine(copy.deepcopy(base), make_jobs(),
                       engine_config(one | {"throughput.single_epoch_validation": True}))
    for name, result in skipped.items():
        assert result.val_loss == [None] and result.best_epoch == 1
        assert asked[name].val_loss[0] is not None
        assert all(torch.equal(result.state[key], asked[name].state[key]) for key in result.state)


def test_engine_results_do_not_depend_on_packing() -> None:
    base = tiny_model()
    alone = run_engine(copy.deepcopy(base), make_jobs(),
                       engine_config({"throughput.adapters_per_step": 1}))
    packed = run_engine(copy.deepcopy(base), make_jobs(),
                        engine_config({"throughput.adapters_per_step": 3}))
    steps: list[int] = []  # adapters per step under a token budget that fits one or two
    budget = engine_config({"throughput.adapters_per_step": 3,
                            "throughput.max_tokens_per_step": 60})
    lora = MultiLora(budgeted := copy.deepcopy(base), budget.adapter.target_modules, 4, 8, 0.0)
    capped: dict[str, AdapterResult] = {}
    train_adapters(budgeted, lora, make_jobs(), budget, lambda r: capped.__setitem__(r.name, r),
                   lambda report: steps.append(len(report.losses)))
    assert max(steps) > 1 and min(steps) == 1 and sum(steps) == sum(r.steps for r in alone.values())
    for other in (packed, capped):  # on a CPU, bit for bit (engine.forward_passes)
        for name, result in alone.items():
            assert other[name].val_loss == result.val_loss
            assert all(torch.equal(other[name].state[k], t) for k, t in result.state.items())


def test_lora_init_and_peft_key_names() -> None:
    model = tiny_model()
    lora = MultiLora(model, ["q_proj", "v_proj"], r=4, alpha=8, dropout=0.0)
    lora.add_adapter("a", seed=1)
    lora.add_adapter("b", seed=1)
    state = lora.state_of("a")
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in state
    assert state["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"].shape == (16, 4)
    assert len(state) == 2 * 2 * 2
    assert all(t.abs().sum() == 0 for k, t in state.items() if "lora_B" in k)
    a_of_b = lora.state_of("b")["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    assert not torch.equal(state["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"],
                           a_of_b)  # seeded by (seed, name): different adapters differ
    assert all(not p.requires_grad for p in model.parameters())


def test_early_stopping_keeps_best_epoch_and_respects_patience() -> None:
    assert early_stopping([3.0, 2.0, 2.5], patience=2, min_delta=0.0) == (1, False)
    assert early_stopping([3.0, 2.0, 2.5, 2.1], patience=2, min_delta=0.0) == (1, True)
    assert early_stopping([3.0, 2.95], patience=1, min_delta=0.1) == (0, True)
    assert early_stopping([3.0, 2.0, 1.0], patience=None, min_delta=0.0) == (2, False)


def test_early_stopped_adapter_keeps_its_best_weights() -> None:
    base = tiny_model()
    # Targets in val contradict train targets, so val loss rises once training bites.
    job = AdapterJob("p0", synthetic_examples(8, seed=0, prefix=()),
                     synthetic_examples(4, seed=5, prefix=()))
    result = run_engine(copy.deepcopy(base), [job],
                        engine_config({"optimizer.epochs": 6, "early_stopping.patience": 1,
                                       "optimizer.learning_rate": 5e-2}))
    assert result["p0"].stopped_early
    epochs_run = len(result["p0"].val_loss)
    assert epochs_run < 6 and result["p0"].best_epoch == epochs_run - 1
    assert result["p0"].steps == epochs_run * 4


def test_exported_adapter_loads_in_peft_with_identical_logits(tmp_path) -> None:
    from peft import PeftModel

    from adaptcommand.models.adapters import read_record
    from adaptcommand.training.export import lora_config, save_adapter

    base = tiny_model()
    config = engine_config({"optimizer.epochs": 1})
    results = run_engine(copy.deepcopy(base), make_jobs()[:2], config)
    for name, result in results.items():
        save_adapter(tmp_path / name, result.state, lora_config(config, "tiny"), result.record())
    assert read_record(tmp_path / "p0")["steps"] == results["p0"].steps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p0", "p1"]  # no temp dirs left

    engine_model = copy.deepcopy(base)
    adapter = config.adapter
    lora = MultiLora(engine_model, adapter.target_modules, adapter.r, adapter.alpha, 0.0)
    for name, result in results.items():
        lora.add_adapter(name, config.seed, result.state)
    batch = pack([synthetic_examples(2, seed=20), synthetic_examples(2, seed=21)],
                 torch.device("cpu"))
    with torch.no_grad(), lora.route(("p0", "p1"), batch.adapter_index):
        mixed = engine_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    for row, name in enumerate(["p0", "p0", "p1", "p1"]):
        peft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / name)).eval()
        with torch.no_grad():
            expected = peft_model(input_ids=batch.input_ids[row:row + 1],
                                  attention_mask=batch.attention_mask[row:row + 1]).logits
        real = batch.attention_mask[row].bool()
        torch.testing.assert_close(mixed[row][real], expected[0][real], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        plain = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert (plain - mixed).abs().max() > 1e-3  # the adapters do change the output


def two_random_adapters(model: LlamaForCausalLM) -> MultiLora:
    lora = MultiLora(model, ["q_proj", "v_proj"], r=4, alpha=8, dropout=0.0)
    for name in ("a", "b"):
        lora.add_adapter(name, seed=0)
        for layer in lora.layers.values():
            torch.nn.init.normal_(layer.lora_B[name])  # non-zero adapters that differ
    return lora


def losses_and_grads(model: LlamaForCausalLM, lora: MultiLora, batch: PackedBatch
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Adapters a and b's mean token losses on `batch` and their gradients (then cleared)."""
    sums, counts = engine._token_losses(model, lora, ("a", "b"), batch)
    (sums / counts).sum().backward()
    params = lora.parameters_of("a") + lora.parameters_of("b")
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return sums / counts, grads


@pytest.mark.parametrize("make", [synthetic_examples, synthetic_sessions],
                         ids=["turn", "session"])
def test_shared_prefix_runs_once_per_adapter_with_the_same_losses_and_gradients(
        monkeypatch, make) -> None:
    model = tiny_model()
    lora = two_random_adapters(model)
    batch = pack([make(3, seed=1), make(2, seed=2)], torch.device("cpu"))
    assert shared_prefix_length(batch) >= len(SYSTEM)
    shared_losses, shared_grads = losses_and_grads(model, lora, batch)
    monkeypatch.setattr(engine, "MIN_SHARED_PREFIX", 10**6)  # force one full pass
    full_losses, full_grads = losses_and_grads(model, lora, batch)
    torch.testing.assert_close(shared_losses, full_losses, atol=1e-5, rtol=1e-5)
    for shared, full in zip(shared_grads, full_grads, strict=True):
        torch.testing.assert_close(shared, full, atol=1e-4, rtol=1e-4)


def test_off_the_cpu_one_pass_splits_each_adapter_at_the_shortest_own_prefix(
        monkeypatch) -> None:
    """Where packing shares one pass (a GPU), each adapter's prefix comes from its own rows, so
    adapters with different system prompts still run theirs once: same losses and gradients
    as the per-adapter passes a CPU runs, up to float rounding."""
    model = tiny_model()
    lora = two_random_adapters(model)
    other = tuple(range(20, 32))  # another system prompt: the rows share no first token
    batch = pack([synthetic_examples(3, seed=1), synthetic_examples(2, seed=2, prefix=other)],
                 torch.device("cpu"))
    assert shared_prefix_length(batch) == 0
    assert [k for _, ks in engine.forward_passes(batch, 2) for k in ks] == [0, 1]
    own_losses, own_grads = losses_and_grads(model, lora, batch)
    monkeypatch.setattr(engine, "BITWISE_DEVICE_TYPES", frozenset())
    ((start, adapters),) = engine.forward_passes(batch, 2)
    assert adapters == [0, 1] and start >= len(SYSTEM)
    one_losses, one_grads = losses_and_grads(model, lora, batch)
    torch.testing.assert_close(one_losses, own_losses, atol=1e-5, rtol=1e-5)
    for one, own in zip(one_grads, own_grads, strict=True):
        torch.testing.assert_close(one, own, atol=1e-4, rtol=1e-4)


def per_turn(session: Example) -> list[Example]:
    """The per-turn examples a session example stands for: each supervised span with every
    token before it as its prompt."""
    labels = session.labels
    ends = [p + 1 for p in range(len(labels)) if labels[p] != IGNORE_INDEX
            and (p + 1 == len(labels) or labels[p + 1] == IGNORE_INDEX)]
    starts = [p for p in range(len(labels)) if labels[p] != IGNORE_INDEX
              and labels[p - 1] == IGNORE_INDEX]
    return [Example(session.input_ids[:end], (IGNORE_INDEX,) * start + labels[start:end])
            for start, end in zip(starts, ends, strict=True)]


def test_session_examples_give_the_per_turn_token_losses() -> None:
    """Same (context, target) tokens, hence the same token-weighted loss: validation loss does not
    depend on the example unit, and the first supervised span bounds the shared prefix."""
    model = tiny_model()
    lora = two_random_adapters(model)
    sessions = [synthetic_sessions(3, seed=1), synthetic_sessions(4, seed=2)]
    turns = [[t for ex in group for t in per_turn(ex)] for group in sessions]
    assert sum(map(len, turns)) > sum(map(len, sessions))
    with torch.no_grad():
        got = engine._token_losses(model, lora, ("a", "b"), pack(sessions, torch.device("cpu")))
        want = engine._token_losses(model, lora, ("a", "b"), pack(turns, torch.device("cpu")))
    assert torch.equal(got[1], want[1])
    torch.testing.assert_close(got[0], want[0], atol=1e-4, rtol=1e-5)
    # rows share 13 tokens, but the second row's first reply token sits at 11 (its second at 13)
    late = Example(SYSTEM + (1, 2, 3, 4), (IGNORE_INDEX,) * 13 + (4,))
    early = Example(SYSTEM + (1, 2, 3, 5), (IGNORE_INDEX,) * 11 + (2, IGNORE_INDEX, 5))
    assert shared_prefix_length(pack([[late], [early]], torch.device("cpu"))) == 10


def test_batches_hold_at_most_batch_size_replies() -> None:
    """batch_size counts supervised replies: session examples fill a batch with several, one
    with more than batch_size replies is a batch of its own, and every example is used once."""
    examples = synthetic_sessions(12, seed=3)
    batches = epoch_batches(examples, 3, 0, "p", 0, 2)
    assert sorted(map(id, (ex for batch in batches for ex in batch))) == sorted(map(id, examples))
    for batch in batches:
        replies = sum(ex.replies for ex in batch)
        assert replies <= 3 or len(batch) == 1
    assert planned_steps(examples, 3, 0, "p", 2, 2) == len(batches) + len(
        epoch_batches(examples, 3, 0, "p", 1, 2))


def test_adapters_per_step_auto_is_one_on_cpu_and_eight_on_a_gpu() -> None:
    auto = TrainingConfig().updated({"throughput.adapters_per_step": None})
    assert adapters_per_step(auto, torch.device("cpu")) == 1
    assert adapters_per_step(auto, torch.device("cuda")) == 8
    three = TrainingConfig().updated({"throughput.adapters_per_step": 3})
    assert adapters_per_step(three, torch.device("cpu")) == 3


def test_dropout_masks_are_each_adapter_s_own(monkeypatch) -> None:
    """At the default dropout, an adapter learns the same bits whether packed with others or
    alone, trained with a subset or after other draws from torch's global generator; and the same
    up to float rounding whether its shared prefix runs once or inside the full pass."""
    base = tiny_model()
    config = engine_config({"adapter.dropout": 0.05, "optimizer.epochs": 2})
    alone = run_engine(copy.deepcopy(base), make_jobs(), config.updated(
        {"throughput.adapters_per_step": 1}))
    torch.manual_seed(123)  # the process-wide generator plays no part
    subset = run_engine(copy.deepcopy(base), make_jobs()[1:], config.updated(
        {"throughput.adapters_per_step": 1}))
    packed = run_engine(copy.deepcopy(base), make_jobs(), config.updated(
        {"throughput.adapters_per_step": 3}))
    no_dropout = run_engine(copy.deepcopy(base), make_jobs(),
                            engine_config({"throughput.adapters_per_step": 1,
                                           "optimizer.epochs": 2}))
    monkeypatch.setattr(engine, "MIN_SHARED_PREFIX", 10**6)  # every row's prefix in full
    full_pass = run_engine(copy.deepcopy(base), make_jobs(), config)
    for name, result in alone.items():
        for other in ([subset[name]] if name in subset else []) + [packed[name]]:
            assert all(torch.equal(other.state[k], t) for k, t in result.state.items())
        for key, tensor in result.state.items():  # the same sums in another order
            torch.testing.assert_close(full_pass[name].state[key], tensor, atol=1e-5, rtol=1e-4)
        moved = max((no_dropout[name].state[k] - t).abs().max() for k, t in result.state.items())
        assert moved > 1e-3  # dropout is on, and 100x above the rounding tolerated above


def test_training_with_lora_dropout_refuses_the_global_generator() -> None:
    model = tiny_model().train()
    lora = MultiLora(model, ["q_proj"], r=4, alpha=8, dropout=0.05)
    lora.add_adapter("a", seed=0)
    batch = pack([synthetic_examples(2, seed=1)], torch.device("cpu"))
    with pytest.raises(RuntimeError, match="DropoutPlan"), lora.route(("a",),
                                                                      batch.adapter_index):
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)


def test_packed_run_saves_the_same_adapter_files_as_one_adapter_per_step(
        tmp_path, monkeypatch) -> None:
    """`train` at the default dropout on a CPU: 3 adapters per step (packed: steps hold several
    adapters) writes every adapter's safetensors file byte for byte as 1 per step does."""
    from test_training_runner import PERSONAS, make_data, tiny_config, train  # imports this module

    widths: list[int] = []
    step = engine._train_step
    monkeypatch.setattr(engine, "_train_step",
                        lambda slots, runs, config: widths.append(len(runs)) or step(slots, runs,
                                                                                      config))
    data = make_data(tmp_path)
    files = {}
    for per_step in (1, 3):
        config = tiny_config({"throughput.adapters_per_step": per_step,
                              "throughput.pack_padding_slack": 100.0})
        assert config.adapter.dropout == TrainingConfig().adapter.dropout == 0.05
        train(data, tmp_path / str(per_step), config=config)
        files[per_step] = [(tmp_path / str(per_step) / p / WEIGHTS_FILE).read_bytes()
                           for p in PERSONAS]
    assert max(widths) == 3  # the second run did pack
    assert files[3] == files[1]
