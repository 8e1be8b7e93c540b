"""The local mesh's small Pilot: Istio VirtualServices and DestinationRules as Envoy config.

It does for the one client-side Envoy of the local mesh what istiod does for a sidecar's
outbound traffic, and serves the result through filesystem xDS. Anything it cannot express is
refused with the field named; nothing is dropped silently.
"""

from canary.localmesh.pilot.model import EnvoyResources, TranslationError, Workload
from canary.localmesh.pilot.mtls import MeshTls
from canary.localmesh.pilot.pilot import Pilot
from canary.localmesh.pilot.tracing import Tracing
from canary.localmesh.pilot.translate import translate

__all__ = [
    "EnvoyResources",
    "MeshTls",
    "Pilot",
    "Tracing",
    "TranslationError",
    "Workload",
    "translate",
]
