"""The data files shipped with the package, read through `safellm.resources` (never import this).

`prompts`, `guardrails` and `evals` here are relative symlinks to the repository's top-level folders
of the same names; a wheel build copies the `*.yaml` files they lead to (see `safellm/resources.py`).
"""
