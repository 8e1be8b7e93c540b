"""The revision a rollout judges: a digest of the spec and of the target's pod template.

Measurements are tagged with it, so a pass earned by one build never counts for the next
(flagger#30), and a changed spec restarts the rollout. `suspend` is left out: pausing a rollout
is not a new one.
"""

from __future__ import annotations

import hashlib
import json

from canary.api.spec import CanarySpec


def of(spec: CanarySpec, *, target_revision: str = "") -> str:
    wire = spec.model_dump(mode="json", by_alias=True, exclude={"suspend"})
    text = json.dumps(wire, sort_keys=True, separators=(",", ":")) + "|" + target_revision
    return hashlib.sha256(text.encode()).hexdigest()[:12]
