"""The guard's YAML data files (the policy, the concept lexicon, the injection exemplars), read and
validated one way: a file that cannot be read or parsed, or whose content is invalid, is a
`ConfigError` naming the file, what it holds and each problem found."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from safellm.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def load_yaml(
    path: Path, what: str, model: type[M], *, root: str = "file", fast: bool = False
) -> M:
    """The YAML file at `path` as a validated `model`. `what` names the content in the messages
    ("{path}: cannot read the {what}: ...", "{path}: invalid {what}: loc: problem; ..."); `root`
    stands for the location of a problem with the document as a whole; `fast`: parse with
    libyaml's C loader when it is installed."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or root}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"{path}: invalid {what}: {problems}") from exc
