"""References to values kept in Kubernetes Secrets: credentials never live in a Canary or a
MetricTemplate, which many people may read and a GitOps repository holds in plain text.

A reference names a key of a Secret in the referring object's own namespace; the controller
reads it when it needs the value (and RBAC lets it `get` Secrets, never list them).
"""

from __future__ import annotations

from pydantic import Field

from canary.api.base import Model

# An HTTP header name (RFC 9110 token characters).
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


class SecretKeyRef(Model):
    name: str = Field(min_length=1, description="The Secret's name, in the object's namespace.")
    key: str = Field(min_length=1, description="The key within the Secret's data.")


class ValueFrom(Model):
    secret_key_ref: SecretKeyRef = Field(description="The Secret key that holds the value.")


class SecretHeader(Model):
    """An HTTP header whose value comes from a Secret (a token, an API key)."""

    name: str = Field(pattern=HEADER_NAME_PATTERN, description="The header's name.")
    value_from: ValueFrom = Field(description="Where the header's value is kept.")
