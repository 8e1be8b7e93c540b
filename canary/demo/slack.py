"""What `canary demo --slack CHANNEL` means: settings read from the environment, the objects
they add to the demo (a ChatProvider, the Canary's notification and approvers), and the lines
of the demo's header that say what the demo will do with Slack.

Credentials stay in the environment (`envsecrets.py`): the settings know only whether each
variable is set, never its value, so nothing here can print or log a token.

A click decides only for a Canary notified through the Slack app that carried it (see
`controller/clicks.py`), so clicks are taken only with `--slack`; without it a signing secret
in the environment is pointed out, and `canary approve|reject` decides.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from canary.api import problems as api_problems
from canary.api.chat_provider import SLACK_API, ChatProvider
from canary.api.people import Approvers, Notification
from canary.demo import envsecrets, scenario

BOT_TOKEN = "SLACK_BOT_TOKEN"
SIGNING_SECRET = "SLACK_SIGNING_SECRET"
APP_TOKEN = "SLACK_APP_TOKEN"
API_URL = "SLACK_API_URL"
APPROVERS = "CANARY_DEMO_APPROVERS"
# The variables the demo's EnvSecrets answers; no other variable is ever read as a secret.
CREDENTIALS = (BOT_TOKEN, SIGNING_SECRET, APP_TOKEN)
PROVIDER = "demo-slack"


class SetupError(Exception):
    """Something `--slack` needs is missing or wrong; the CLI exits 2 with this message."""


@dataclass(frozen=True, slots=True)
class SlackSettings:
    # None: no --slack.
    channel: str | None = None
    approval: bool = False
    approvers: tuple[str, ...] = ()
    api_url: str = SLACK_API
    # Whether SLACK_SIGNING_SECRET and SLACK_APP_TOKEN are set (their values are not kept).
    signing: bool = False
    socket_mode: bool = False

    @property
    def on(self) -> bool:
        return self.channel is not None

    @property
    def serves_interactions(self) -> bool:
        """Whether the demo serves POST /slack/interactions."""
        return self.on and self.approval and self.signing

    @property
    def opens_socket(self) -> bool:
        return self.on and self.approval and self.socket_mode

    @property
    def takes_clicks(self) -> bool:
        return self.serves_interactions or self.opens_socket


def settings(
    *,
    channel: str | None,
    approval: bool,
    approvers: Sequence[str] = (),
    environ: Mapping[str, str],
) -> SlackSettings:
    """The settings for these options and this environment; SetupError says what is wrong."""
    signing = bool(environ.get(SIGNING_SECRET, "").strip())
    if channel is None:
        return SlackSettings(approval=approval, signing=signing)
    if not environ.get(BOT_TOKEN, "").strip():
        raise SetupError(
            f"--slack needs a bot token: set {BOT_TOKEN} (xoxb-…) in the environment "
            "(the demo never reads it from a file or an option)"
        )
    from_env = [user.strip() for user in environ.get(APPROVERS, "").split(",") if user.strip()]
    users = tuple(dict.fromkeys([*from_env, *approvers]))
    found = SlackSettings(
        channel=channel,
        approval=approval,
        approvers=users,
        api_url=environ.get(API_URL, "").strip() or SLACK_API,
        signing=signing,
        socket_mode=bool(environ.get(APP_TOKEN, "").strip()),
    )
    _check(found)
    return found


def _check(found: SlackSettings) -> None:
    """The objects these settings make must validate; say which option or variable is wrong."""
    checks: list[tuple[str, Any, dict[str, Any]]] = [
        ("--slack", Notification, {"provider": PROVIDER, "channel": found.channel}),
        (f"--approver / {APPROVERS}", Approvers, {"users": list(found.approvers)}),
        (API_URL, ChatProvider, provider(found, scenario.NAMESPACE)),
    ]
    for source, model, body in checks:
        try:
            model.model_validate(body)
        except ValidationError as exc:
            lines = "; ".join(api_problems.lines(exc, model))
            raise SetupError(f"{source}: {lines}") from None


def provider(found: SlackSettings, namespace: str) -> dict[str, Any]:
    """The demo's ChatProvider: a Slack bot whose credentials are environment variables."""
    slack: dict[str, Any] = {
        "token": _ref(BOT_TOKEN),
        "apiUrl": found.api_url if found.api_url.endswith("/") else found.api_url + "/",
    }
    if found.signing:
        slack["signingSecret"] = _ref(SIGNING_SECRET)
    if found.socket_mode:
        slack["appToken"] = _ref(APP_TOKEN)
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "ChatProvider",
        "metadata": {"name": PROVIDER, "namespace": namespace},
        "spec": {"slack": slack, "channel": found.channel},
    }


def with_slack(objects: Sequence[dict[str, Any]], found: SlackSettings) -> list[dict[str, Any]]:
    """The demo's objects told to notify through Slack: the ChatProvider beside the Canary, the
    Canary's notification, and its approvers when it has approval gates."""
    if not found.on:
        return list(objects)
    key = scenario.plan(list(objects)).key
    changed: list[dict[str, Any]] = []
    for original in objects:
        body = original
        if body.get("kind") == "Canary":
            body = copy.deepcopy(original)
            spec = body["spec"]
            spec["notifications"] = [
                *(spec.get("notifications") or []),
                {"provider": PROVIDER, "channel": found.channel},
            ]
            approvals = spec.get("approvals")
            if approvals is not None and found.approvers:
                approvers = approvals.setdefault("approvers", {})
                approvers["users"] = list(
                    dict.fromkeys([*(approvers.get("users") or []), *found.approvers])
                )
        changed.append(body)
    return [*changed, provider(found, key.namespace)]


def header(found: SlackSettings, interactions_url: str = "") -> list[str]:
    """What the demo will do with Slack, for the lines above the live view."""
    if not found.on:
        if found.approval and found.signing:
            return [
                f"{SIGNING_SECRET} is set but --slack is not: Slack clicks are taken only for a "
                "Canary notified through the Slack app, so decide with canary approve|reject"
            ]
        return []
    lines = [f"Slack: one message per rollout in {found.channel} via {found.api_url}"]
    if not found.approval:
        return lines
    if interactions_url:
        lines.append(f"Slack interactions: {interactions_url} (signed with {SIGNING_SECRET})")
    if found.opens_socket:
        lines.append(f"Slack Socket Mode: on ({APP_TOKEN}); clicks need no public endpoint")
    if not found.takes_clicks:
        lines.append(
            "Slack: the message shows Approve/Reject, but no click can reach the demo: set "
            f"{SIGNING_SECRET} (interactions URL) or {APP_TOKEN} (Socket Mode)"
        )
    if found.approvers:
        lines.append(f"Slack approvers: {', '.join(found.approvers)}")
    else:
        lines.append(
            f"Slack approvers: none (set {APPROVERS} or --approver U…), so every click is "
            "refused; decide with canary approve|reject"
        )
    return lines


def _ref(key: str) -> dict[str, str]:
    return envsecrets.ref(key).model_dump(by_alias=True)
