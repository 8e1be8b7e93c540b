"""Where a command's Canary lives, said the same way by every command that reads or asks one.

`--state-dir` (or `$CANARY_STATE_DIR`) means a `canary demo --state-dir`; otherwise the cluster
of `--kubeconfig` (or `$KUBECONFIG`, or in-cluster credentials) and `--context`. So one pipeline
step's text works against both. The client is opened on first use, so a usage error in another
option is reported before any connection is tried.

Errors a person can act on end the command with one line and a fixed exit code: forbidden or
not found, 1; the cluster unreachable or not configured, 2.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from canary.cluster.client import Client
    from canary.ports import CanaryKey

STATE_DIR_ENV = "CANARY_STATE_DIR"


@dataclass
class Connection:
    state_dir: Path | None
    kubeconfig: str | None
    context: str | None
    namespace_option: str | None
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = _open(self)
        return self._client

    @property
    def namespace(self) -> str:
        return self.namespace_option or self.client.default_namespace

    def key(self, name: str) -> CanaryKey:
        from canary.ports import CanaryKey

        return CanaryKey(self.namespace, name)

    def command(self, *words: str) -> str:
        """A command line to run next against the same place, as this one was given."""
        flags: list[str] = []
        if self.namespace_option:
            flags += ["-n", self.namespace_option]
        # An environment variable carries over to the next command by itself.
        if self.state_dir is not None and os.environ.get(STATE_DIR_ENV) != str(self.state_dir):
            flags += ["--state-dir", str(self.state_dir)]
        if self.kubeconfig and os.environ.get("KUBECONFIG") != self.kubeconfig:
            flags += ["--kubeconfig", self.kubeconfig]
        if self.context:
            flags += ["--context", self.context]
        return " ".join(["canary", *words, *flags])


def _open(connection: Connection) -> Client:
    from canary.cluster.client import KubeClient, LocalClient
    from canary.errors import CanaryError

    if connection.state_dir is not None:
        from canary.localmesh.store import LocalStore

        return LocalClient(LocalStore(connection.state_dir))
    try:
        return KubeClient.connect(connection.kubeconfig, connection.context)
    except CanaryError as exc:
        fail(str(exc), 2)


def connected(
    *, namespace_help: str = "The Canary's namespace (default: the context's, else default)."
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Adds --namespace/-n, --state-dir, --kubeconfig and --context; the command gets
    `connection` instead."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def wrapper(
            *,
            namespace: str | None,
            state_dir: Path | None,
            kubeconfig: str | None,
            context: str | None,
            **rest: Any,
        ) -> None:
            command(connection=Connection(state_dir, kubeconfig, context, namespace), **rest)

        options = [
            click.option("--namespace", "-n", help=namespace_help),
            click.option(
                "--state-dir",
                envvar=STATE_DIR_ENV,
                type=click.Path(exists=True, file_okay=False, path_type=Path),
                help="The state directory of a `canary demo --state-dir` (also "
                f"${STATE_DIR_ENV}); without it, the cluster.",
            ),
            click.option(
                "--kubeconfig",
                envvar="KUBECONFIG",
                help="The kubeconfig (also $KUBECONFIG); without either, in-cluster credentials "
                "in a pod, else ~/.kube/config.",
            ),
            click.option("--context", help="The kubeconfig context to use."),
        ]
        decorated: Callable[..., None] = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return decorated

    return decorate


def fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


@contextlib.contextmanager
def reported(connection: Connection) -> Iterator[None]:
    """Ends the command with one line for what the user can act on, never a traceback."""
    from canary.cluster.client import Forbidden, NotFound
    from canary.errors import CanaryError, Unavailable

    try:
        yield
    except (Forbidden, NotFound) as exc:
        fail(str(exc), 1)
    except Unavailable as exc:
        fail(f"cannot reach {connection.client.where}: {exc}", 2)
    except CanaryError as exc:
        fail(str(exc), 2)


def requester() -> str:
    """Who asks, for the controller's Event: a pipeline's user when in one, else the login."""
    for variable in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER"):
        value = os.environ.get(variable)
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A uid with no name (a container's): the controller's Event says "someone".
        return ""
