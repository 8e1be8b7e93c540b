"""The demo's Secrets: Slack's credentials from the environment, everything else from the store.

A cluster reads a ChatProvider's token from a Kubernetes Secret; the demo has none to read, and
a token written into its state directory would outlive the run in a file. So the demo's
ChatProvider names its credentials as `{name: env, key: SLACK_BOT_TOKEN}` and this answers such
a ref from the process's environment, at the moment it is asked (a token exported again is
used from the next Chat the publisher makes).

Only the variables named in `keys` are answered: a `--policy` file naming `{name: env, key:
AWS_SECRET_ACCESS_KEY}` in a webhook header must not send the user's other secrets anywhere.
Any other ref goes to the store (Secret objects of the state directory), as before.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

from canary.api.secrets import SecretKeyRef
from canary.errors import InvalidSpec
from canary.ports import Secrets

ENV = "env"


class EnvSecrets:
    def __init__(
        self,
        fallback: Secrets,
        *,
        keys: Collection[str],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.fallback = fallback
        self.keys = frozenset(keys)
        # Read at each call, not copied: os.environ as it is then.
        self.environ = os.environ if environ is None else environ

    def value(self, namespace: str, ref: SecretKeyRef) -> str:
        if ref.name != ENV or ref.key not in self.keys:
            return self.fallback.value(namespace, ref)
        found = self.environ.get(ref.key, "").strip()
        if not found:
            raise InvalidSpec(f"the environment variable {ref.key} is not set")
        return found


def ref(key: str) -> SecretKeyRef:
    """The ref that `EnvSecrets` answers from the environment variable `key`."""
    return SecretKeyRef(name=ENV, key=key)
