"""Progress of long work, without a terminal: use cases report through these callables and each
front end draws them its own way (the CLI as rich progress bars, tests not at all).

    def build(..., stage: Stage = quiet) -> ...:
        advance = stage("Building", total)      # one bar per stage, added as the stages come
        advance(1, "cohorts")                   # units done, and what is being done now
"""

from __future__ import annotations

from collections.abc import Callable

Advance = Callable[[int, str], None]  # (units done since the last call, what is being done)
Stage = Callable[[str, int], Advance]  # (title, total units) -> advance
Step = Callable[[str], None]  # one named step done (what `by_step` makes of an Advance)


def quiet(title: str, total: int) -> Advance:
    """A stage that shows nothing."""
    return lambda n, step: None


def by_step(advance: Advance) -> Callable[[str], None]:
    """For work that reports one named step at a time."""
    return lambda step: advance(1, step)


def by_count(advance: Advance) -> Callable[[int], None]:
    """For work that reports a count of units done."""
    return lambda k: advance(k, "")
