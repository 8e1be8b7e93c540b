"""The declarative resources: pydantic models that are the one source of the CRD schema.

Group `canary.dev`, version `v1alpha1`. Defaults live in the models and bad values are rejected
with the field path, so neither the engine nor an adapter ever re-validates a spec.
"""

GROUP = "canary.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
