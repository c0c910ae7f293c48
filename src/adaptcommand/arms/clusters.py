"""Cluster personas on behaviour, so one LoRA adapter learns from each group of alike users.

A per-user adapter sees only its user's few sessions; a unified one averages everyone's habits
away. A cluster adapter pools the data of users who want the same things from their home, so
behaviour (what the devices are set to), not the character text, decides the groups.

Observations of a persona: the actions each assistant turn of its *train* sessions commits to
(`evaluation.actions.extract_actions`, the extractor evaluation scores with). Held-out sessions
are never read, and neither are the dataset's `routines` (the answer key of the preference probe
and of the dataset's own task, which a deployed assistant never sees), so clustering cannot leak
test data or labels into training. Features (names as written to `clusters.json`):

- `device:D`: share of the persona's device settings that touch device D (sums to 1);
- `D.P` (numeric params, `schema.NUMERIC_PARAMS`): mean value scaled to [0, 1] by the schema's
  range (AC temperature 16..30 -> (t - 16) / 14), so a degree and a percent weigh alike;
- `D.P=V` (enums and booleans): share of the persona's settings of D.P that chose V.

A persona that never sets a parameter (or has no observation at all) gets the column mean: no
evidence is read as "typical", not as "zero". Columns are standardised to z-scores so a rarely
varying share counts as much as a brightness; zero-variance columns say nothing and are dropped.

KMeans (scikit-learn, `n_init=10`, `random_state=seed`) with K = `config.cluster.k`, or the K in
2..min(8, n - 1) with the best silhouette (ties: the smaller K). Clusters are numbered in order of
their first persona, so the same data and config give the same `cluster-NN` names and the same
`clusters.json`, byte for byte: resume depends on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.metrics import silhouette_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from adaptcommand.data.schema import (
    DEVICE_MODELS,
    DEVICES,
    NUMERIC_PARAMS,
    CleanDialogue,
)
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.actions import ActionDict, extract_actions

CLUSTERS_FILE = "clusters.json"
MAX_AUTO_CLUSTERS = 8
MIN_VARIANCE = 1e-12  # below this a column is constant up to rounding


def _schema_params() -> tuple[dict[tuple[str, str], tuple[float, float]],
                              dict[tuple[str, str], tuple[Any, ...]]]:
    """(numeric param -> (min, max), categorical param -> values), read off the schema's JSON
    schema so the features follow the schema instead of restating it."""
    numeric, categorical = {}, {}
    for device, model in DEVICE_MODELS.items():
        for param, spec in model.model_json_schema()["properties"].items():
            kind = next(option for option in spec["anyOf"] if option["type"] != "null")
            if (device, param) in NUMERIC_PARAMS:
                numeric[(device, param)] = (float(kind["minimum"]), float(kind["maximum"]))
            else:
                values = (True, False) if kind["type"] == "boolean" else tuple(kind["enum"])
                categorical[(device, param)] = values
    return numeric, categorical


NUMERIC_RANGES, CATEGORICAL_VALUES = _schema_params()


def _value_name(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


FEATURE_NAMES: tuple[str, ...] = (
    *(f"device:{device}" for device in DEVICES),
    *(f"{device}.{param}" for device, param in sorted(NUMERIC_RANGES)),
    *(f"{device}.{param}={_value_name(value)}"
      for (device, param), values in sorted(CATEGORICAL_VALUES.items()) for value in values),
)


def persona_observations(dialogues: Sequence[CleanDialogue]) -> list[ActionDict]:
    """Each train assistant turn's committed actions (turns that set nothing are left out)."""
    observed = [extract_actions(m.text) for d in dialogues for m in d.messages
                if m.role == "assistant"]
    return [actions for actions in observed if actions]


def raw_features(observations: Sequence[ActionDict]) -> dict[str, float]:
    """Unscaled features of one persona (FEATURE_NAMES order); what it never sets is absent."""
    devices = [device for actions in observations for device in actions]
    features = {f"device:{d}": devices.count(d) / len(devices) for d in DEVICES if devices}
    for (device, param), (low, high) in sorted(NUMERIC_RANGES.items()):
        values = [a[device][param] for a in observations if param in a.get(device, {})]
        if values:
            features[f"{device}.{param}"] = (float(np.mean(values)) - low) / (high - low)
    for (device, param), choices in sorted(CATEGORICAL_VALUES.items()):
        values = [a[device][param] for a in observations if param in a.get(device, {})]
        for choice in choices if values else ():
            share = sum(v == choice and type(v) is type(choice) for v in values) / len(values)
            features[f"{device}.{param}={_value_name(choice)}"] = share
    return features


@dataclass(frozen=True)
class Features:
    """Standardised behaviour features: one row per persona, one column per kept feature."""

    personas: list[str]
    names: list[str]
    matrix: np.ndarray


def behaviour_features(train: Mapping[str, Sequence[CleanDialogue]],
                       personas: Sequence[str]) -> Features:
    """Feature matrix of `personas` from their train dialogues (see the module docstring)."""
    rows = [raw_features(persona_observations(train.get(p, []))) for p in personas]
    raw = np.array([[row.get(name, np.nan) for name in FEATURE_NAMES] for row in rows])
    # A column nobody sets is kept as zeros by the imputer, then dropped as constant.
    pipeline = make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True),
                             VarianceThreshold(MIN_VARIANCE), StandardScaler())
    try:
        matrix = pipeline.fit_transform(raw)
    except ValueError:  # no column left: every persona looks the same
        raise AdaptCommandError(f"the {len(personas)} personas' settings do not differ; there is "
                                "nothing to cluster on (use --strategy unified)") from None
    names = [str(n) for n in pipeline.get_feature_names_out(list(FEATURE_NAMES))]
    return Features(list(personas), names, matrix)


@dataclass(frozen=True)
class Clustering:
    """The chosen clustering and how each K tried scored."""

    k: int
    silhouettes: dict[int, float | None]  # None: fewer distinct behaviours than K
    assignments: dict[str, str]  # persona -> cluster name
    feature_names: list[str]
    seed: int

    def groups(self) -> dict[str, list[str]]:
        """Cluster name -> its personas (the runner's adapter groups)."""
        groups: dict[str, list[str]] = {}
        for persona, name in self.assignments.items():
            groups.setdefault(name, []).append(persona)
        return dict(sorted(groups.items()))

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "silhouette": self.silhouettes[self.k],
                "silhouettes": {str(k): s for k, s in self.silhouettes.items()},
                "seed": self.seed, "clusters": self.groups(), "assignments": self.assignments,
                "features": self.feature_names}


def cluster_name(index: int) -> str:
    return f"cluster-{index:02d}"


def _labels(matrix: np.ndarray, k: int, seed: int) -> list[int]:
    """KMeans labels renumbered by first appearance (stable names)."""
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(matrix)
    order = {label: i for i, label in enumerate(dict.fromkeys(labels.tolist()))}
    return [order[label] for label in labels.tolist()]


def candidate_ks(n_personas: int, k: int | None) -> list[int]:
    """The K values to try: `k` alone, or 2..min(8, n - 1); a clear error when none fits."""
    if k is not None and not 2 <= k < n_personas:
        raise AdaptCommandError(f"clusters={k}: needs 2 <= clusters < the number of personas "
                                f"({n_personas}); use --strategy unified or per-user instead")
    if k is None and n_personas < 3:
        raise AdaptCommandError(f"--strategy cluster needs at least 3 personas, got {n_personas}")
    return [k] if k is not None else list(range(2, min(MAX_AUTO_CLUSTERS, n_personas - 1) + 1))


def cluster_features(features: Features, k: int | None, seed: int) -> Clustering:
    """KMeans with K = `k`, or the K in 2..min(8, n - 1) with the best silhouette."""
    n = len(features.personas)
    candidates = candidate_ks(n, k)
    silhouettes: dict[int, float | None] = {}
    best: tuple[int, list[int]] | None = None
    for candidate in candidates:
        labels = _labels(features.matrix, candidate, seed)
        if len(set(labels)) < candidate:
            silhouettes[candidate] = None
            continue
        silhouettes[candidate] = round(float(silhouette_score(features.matrix, labels)), 6)
        if best is None or silhouettes[candidate] > silhouettes[best[0]]:
            best = (candidate, labels)
    if best is None:
        raise AdaptCommandError(f"the {n} personas show fewer distinct behaviours than "
                                f"{candidates[0]} clusters; ask for fewer (--set cluster.k=K)")
    chosen, labels = best
    assignments = {p: cluster_name(label) for p, label in zip(features.personas, labels,
                                                               strict=True)}
    return Clustering(chosen, silhouettes, assignments, features.names, seed)


def cluster_personas(train: Mapping[str, Sequence[CleanDialogue]], personas: Sequence[str],
                     k: int | None, seed: int) -> Clustering:
    """Behaviour clusters of `personas` from their train dialogues."""
    candidate_ks(len(personas), k)  # refuse before reading any dialogue
    return cluster_features(behaviour_features(train, personas), k, seed)


def describe_clusters(path: Path) -> str:
    """One line for the CLI: K, silhouette and cluster sizes from a `clusters.json`."""
    clusters = json.loads(path.read_text(encoding="utf-8"))
    sizes = ", ".join(str(len(members)) for members in clusters["clusters"].values())
    return (f"{clusters['k']} behaviour clusters (silhouette {clusters['silhouette']:.3f}; "
            f"sizes {sizes}) in {path}")
