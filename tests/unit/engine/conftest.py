from __future__ import annotations

import pytest

from canary.api.spec import CanarySpec

from .builders import make_spec


@pytest.fixture
def spec() -> CanarySpec:
    return make_spec()
