"""Temporal model bundles under `<SAFELLM_HOME>/models/<task>-temporal/<version>/`, written
atomically like the tabular ones: the network's weights with its vocabulary and configuration
(`model.pt`, loaded with `weights_only=True`), `bundle.json` (metrics with CIs, the tabular models'
metrics on the same folds for comparison, risk bands, training-data hash, code version) and the
run's reports. `LATEST` names the newest version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from safellm.errors import ArtifactError
from safellm.risk.evaluate import Estimate
from safellm.risk.registry import META_FILE, VersionMeta, version_dir, write_version

if TYPE_CHECKING:
    from safellm.risk.sequences import Vocab
    from safellm.risk.temporal import TemporalConfig, TimeAwareGRU

MODEL_FILE = "model.pt"
MODEL_NAME = "temporal"


class TemporalMeta(VersionMeta):
    model: str = MODEL_NAME
    attribution: str = "integrated gradients on event embeddings (zero-content baseline)"
    config: dict[str, Any]
    epochs: int
    fold_epochs: list[int]
    offset: float
    metrics: dict[str, Estimate]
    # the tabular bundle trained on the same data (same folds), for a side-by-side comparison
    tabular_version: str | None = None
    tabular_metrics: dict[str, dict[str, Estimate]] = Field(default_factory=dict)
    seconds_per_epoch: float | None = None


def task_dir(models_dir: Path, task: str) -> Path:
    return Path(models_dir) / f"{task}-{MODEL_NAME}"


@dataclass
class TemporalBundle:
    meta: TemporalMeta
    net: TimeAwareGRU
    vocab: Vocab
    cfg: TemporalConfig
    path: Path


def save_temporal(
    models_dir: Path,
    meta: TemporalMeta,
    net: TimeAwareGRU,
    vocab: Vocab,
    extra: dict[str, Path] | None = None,
) -> Path:
    import torch

    def write(tmp: Path) -> None:
        torch.save(
            {"state": net.state_dict(), "vocab": vocab.to_dict(), "config": meta.config},
            tmp / MODEL_FILE,
        )
        (tmp / META_FILE).write_text(meta.model_dump_json(indent=2))

    return write_version(task_dir(models_dir, meta.task), meta.version, write, extra)


def load_temporal(models_dir: Path, task: str, version: str | None = None) -> TemporalBundle:
    import torch

    from safellm.risk.sequences import Vocab
    from safellm.risk.temporal import TemporalConfig, TimeAwareGRU

    path = version_dir(
        task_dir(models_dir, task),
        version,
        f"no temporal model for task {task!r} under {models_dir}: run `safellm train "
        f"--task {task} --temporal`",
    )
    if not (path / META_FILE).exists() or not (path / MODEL_FILE).exists():
        raise ArtifactError(f"temporal model bundle {path} not found or incomplete")
    meta = TemporalMeta.model_validate(json.loads((path / META_FILE).read_text()))
    try:
        payload = torch.load(path / MODEL_FILE, weights_only=True)
        cfg = TemporalConfig(**payload["config"])
        vocab = Vocab.from_dict(payload["vocab"])
        net = TimeAwareGRU(len(vocab.tokens), cfg.dim, cfg.hidden)
        net.load_state_dict(payload["state"])
    except (RuntimeError, KeyError, TypeError, ValueError, OSError) as exc:
        raise ArtifactError(f"temporal model bundle {path} cannot be read: {exc}") from exc
    net.eval()
    return TemporalBundle(meta=meta, net=net, vocab=vocab, cfg=cfg, path=path)
