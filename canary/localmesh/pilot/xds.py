"""Filesystem xDS: the files Envoy watches, written whole and renamed into place.

Envoy watches the directory for a file being moved onto the path it was given (inotify's
IN_MOVED_TO), so a file is written under a temporary name in the same directory, flushed, and
renamed over the old one: Envoy never reads half a file, and a file edited in place would not
be noticed at all. Each file is a DiscoveryResponse in JSON: `version_info` and `resources`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

Json = dict[str, Any]

CDS_FILE = "cds.json"
RDS_FILE = "rds.json"


def write(path: Path, resources: list[Json], *, version: int) -> None:
    response = {"version_info": str(version), "resources": resources}
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w") as out:
            json.dump(response, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read(path: Path) -> tuple[int, list[Json]] | None:
    """The version and resources of a file written earlier; None when absent or unreadable."""
    try:
        response = json.loads(path.read_text())
        return int(response["version_info"]), list(response["resources"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def canonical(resources: list[Json]) -> str:
    """A text that is equal exactly when the resources are, to push only what changed."""
    return json.dumps(resources, sort_keys=True, separators=(",", ":"))
