"""Check a Canary's notifications and approvals against the ChatProviders in the files.

As with templates, a provider is looked up only when the paths hold some ChatProvider: with
none, it is assumed to live in the cluster and nothing is said. Rules:
- each notification's provider must be among them, and the notification must have a channel
  (its own or the provider's);
- approvers named for chat need a notification through a Slack bot (the only backend with
  buttons), or nobody can click; `canary approve` still works, so the finding says that.
"""

from __future__ import annotations

from canary.api.resources import Canary
from canary.validation.findings import About
from canary.validation.inventory import Index, model_key, not_found


def check(about: About, canary: Canary, index: Index) -> None:
    namespace = model_key(canary)[0]
    if not index.chat_providers:
        return
    slack = False
    for position, notification in enumerate(canary.spec.notifications):
        key = (namespace, notification.provider)
        placed = index.chat_providers.get(key)
        path = f"spec.notifications[{position}]"
        if placed is None:
            about.add(f"{path}.provider", f"ChatProvider {not_found(key, index.chat_providers)}")
            continue
        spec = placed.obj.spec
        slack = slack or spec.slack is not None
        if spec.slack is not None and not (notification.channel or spec.channel):
            about.add(
                f"{path}.channel",
                f"ChatProvider {key[0]}/{key[1]} names no channel and neither does this "
                "notification: where would the messages go?",
            )
    approvals = canary.spec.approvals
    if approvals is not None and approvals.approvers and not slack:
        about.add(
            "spec.approvals.approvers",
            "no notification goes through a Slack bot (ChatProvider with `slack`), so nobody "
            "gets buttons to click; only `canary approve|reject` can decide",
        )
