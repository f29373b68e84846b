"""`python -m safellm.cli`: the `safellm` command."""

from safellm.cli.main import main

main()
