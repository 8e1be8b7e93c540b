"""The revision a rollout judges: a digest of the spec and of the target's pod template.

Measurements are tagged with it, so a pass earned by one build never counts for the next
(flagger#30), and a changed spec restarts the rollout. `suspend` is left out: pausing a rollout
is not a new one.
"""

from __future__ import annotations

import hashlib
import json

from canary.api.spec import CanarySpec

# Keyed by id(spec), holding the spec so the id is not reused while the entry lives: the
# scheduler and every tick ask for the same spec object's revision until the spec changes.
_digests: dict[tuple[int, str], tuple[CanarySpec, str]] = {}
_CACHE_LIMIT = 4096


def of(spec: CanarySpec, *, target_revision: str = "") -> str:
    cached = _digests.get((id(spec), target_revision))
    if cached is not None and cached[0] is spec:
        return cached[1]
    wire = spec.model_dump(mode="json", by_alias=True, exclude={"suspend"})
    text = json.dumps(wire, sort_keys=True, separators=(",", ":")) + "|" + target_revision
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    if len(_digests) >= _CACHE_LIMIT:
        _digests.clear()
    _digests[(id(spec), target_revision)] = (spec, digest)
    return digest


def of_template(template: object) -> str:
    """The revision of a Deployment's pod template (`spec.template`, as JSON data): anything a
    new pod would run differently with (the image, an env variable, a volume) changes it."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]
