"""The `canary` command: the one entry point for users, CI pipelines and the controller.

`root` holds the group and the small commands; each other module adds one command to it when
imported, which this package does, so `canary.cli.main` always has them all.
"""

from canary.cli import (  # noqa: F401  (each adds its command to main)
    abort,
    approve,
    chaos,
    cluster,
    demo,
    explain,
    pause,
    preflight,
    promote,
    release,
    retry,
    status,
    wait,
)
from canary.cli.root import main

__all__ = ["main"]
