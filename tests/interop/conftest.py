"""A Bundle exported from the MIMIC-III demo, for the FHIR tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest


@pytest.fixture(scope="session")
def demo_bundle_base(demo_build) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Admission 142345 of the demo (ICU stay, labs, notes) as exported."""
    from safellm.fhir.export import iter_bundles

    return next(iter_bundles(demo_build.out_dir, [142345]))


@pytest.fixture
def demo_bundle(demo_bundle_base: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(demo_bundle_base)
