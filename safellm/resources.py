"""The data files shipped inside the package: prompt templates, the guard policy and its concept
lexicon, eval suites.

The repository keeps them in its top-level folders `prompts/`, `guardrails/` and `evals/` (data,
reviewed on their own; `guardrails/` must never become a Python package, it would shadow the
guardrails-ai library). `safellm/_data/` holds one relative symlink per folder
(`safellm/_data/prompts -> ../../prompts`, ...), which makes the same files package data of
`safellm._data`:

- an editable install (`pip install -e .`, what `make install` does) imports `safellm` from the
  source tree, where the links lead to the top-level folders: an edited prompt is seen at once;
- a wheel build copies the `*.yaml` files behind the links into `safellm/_data/`
  (`[tool.setuptools.package-data]` in pyproject.toml), so an installed wheel carries them.

Both are found the same way, `importlib.resources.files("safellm._data")`. (Mapping the folders to
packages with `[tool.setuptools.package-dir]` builds a correct wheel, but setuptools' editable
finder cannot import a namespace package nested in a regular one, pypa/setuptools#4943.)

Paths are returned resolved (in a source tree: the top-level folder, as an error message should
name it). Nothing happens at import, and the functions only build paths: no data file is read here.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from safellm.errors import ConfigError

PACKAGE = "safellm._data"
POLICY = "clinical.yaml"
CONCEPTS = "concepts.yaml"
GROUNDING_SET = "grounding.v1.yaml"


def data_dir() -> Path:
    """The folder of the packaged data (`safellm/_data/`)."""
    root = files(PACKAGE)
    if not isinstance(root, Path):
        raise ConfigError(
            f"safellm's data files are not on disk ({root!r}): install safellm with pip "
            "(as a wheel or editable), not as a zip archive"
        )
    return root


def prompts_dir() -> Path:
    """The packaged prompt templates (`prompts/`)."""
    return (data_dir() / "prompts").resolve()


def guardrails_dir() -> Path:
    """The packaged guard policies (`guardrails/`)."""
    return (data_dir() / "guardrails").resolve()


def policy_file() -> Path:
    """The packaged guard policy (`guardrails/clinical.yaml`)."""
    return guardrails_dir() / POLICY


def concepts_file() -> Path:
    """The packaged clinical concept lexicon (`guardrails/concepts.yaml`)."""
    return guardrails_dir() / CONCEPTS


def evals_dir() -> Path:
    """The packaged eval suites and labelled sets (`evals/`)."""
    return (data_dir() / "evals").resolve()


def suite_file(name: str, folder: Path | None = None) -> Path:
    """The eval suite `name` (`default.v1` or `default.v1.yaml`) in `folder` (default: packaged)."""
    filename = name if name.endswith(".yaml") else f"{name}.yaml"
    return (evals_dir() if folder is None else Path(folder)) / filename


def grounding_set() -> Path:
    """The packaged labelled note-grounding pairs (`evals/grounding.v1.yaml`)."""
    return evals_dir() / GROUNDING_SET
