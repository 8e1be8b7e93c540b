"""The declarative resources: pydantic models that are the one source of the CRD schema.

Group `canary.dev`, version `v1alpha1`. Defaults live in the models and bad values are rejected
with the field path, so neither the engine nor an adapter ever re-validates a spec.
"""

from typing import Final

GROUP: Final = "canary.dev"
VERSION: Final = "v1alpha1"
# Spelled out rather than formatted from the two above, so that its type is the Literal the
# models' apiVersion fields take as their default (a test holds the three together).
API_VERSION: Final = "canary.dev/v1alpha1"
