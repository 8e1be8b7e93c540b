"""`validate_paths`: load, check each document, cross-check the objects, and sort what was found.

The CLI prints `Findings.lines()` and `Findings.summary()` and exits on `Findings.failed`. Input
of any shape gives findings, never a traceback: an unexpected exception while checking one Canary
becomes an "internal error" finding on that Canary's document, and the others are still checked.
Both are safe to print to a terminal: a file name or a value from the input may hold control
characters (an escape sequence would rewrite the screen, a newline would forge a line), so
`printable` escapes them, and undecodable bytes of a file name, the way Python spells them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from canary.validation import collisions, crosscheck, loader
from canary.validation.findings import Finding, Where
from canary.validation.inventory import Index

# The kinds the summary names, in the order it names them, with their plurals.
_KINDS = (
    ("Canary", "Canaries"),
    ("MetricTemplate", "MetricTemplates"),
    ("VirtualService", "VirtualServices"),
    ("DestinationRule", "DestinationRules"),
    ("Gateway", "Gateways"),
    ("Service", "Services"),
    ("ServiceEntry", "ServiceEntries"),
    ("Pod", "Pods"),
    ("Deployment", "Deployments"),
    ("PeerAuthentication", "PeerAuthentications"),
)

# C0 and C1 controls, DEL, the bidirectional overrides and isolates (which reorder what a reader
# sees), line and paragraph separators, and the surrogates that stand for undecodable bytes.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with every character that could act on a terminal written as an escape."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        # surrogateescape's stand-in for the byte code - 0xDC00 of an undecodable name.
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


@dataclass(slots=True)
class Findings:
    found: list[Finding] = field(default_factory=list)
    loaded: loader.Loaded = field(default_factory=loader.Loaded)

    @property
    def failed(self) -> bool:
        return bool(self.found)

    def sorted(self) -> list[Finding]:
        # A stable sort keeps the order in which each document's problems were found.
        return sorted(self.found, key=lambda finding: finding.where.sort_key())

    def lines(self) -> Iterator[str]:
        for finding in self.sorted():
            yield printable(finding.line())

    def summary(self) -> str:
        kinds = self.loaded.kinds
        documents = sum(kinds.values())
        parts = [_count(kinds[kind], kind, plural) for kind, plural in _KINDS if kinds.get(kind)]
        if self.loaded.ignored:
            parts.append(f"{self.loaded.ignored} other (ignored)")
        if kinds.get(""):
            parts.append(f"{kinds['']} not Kubernetes objects")
        checked = _count(documents, "document", "documents")
        listed = f": {', '.join(parts)}" if parts else ""
        problems = _count(len(self.found), "problem", "problems")
        unchecked = ""
        if self.loaded.foreign:
            objects = _count(self.loaded.foreign, "object", "objects")
            unchecked = f"; {objects} of Flagger or Argo Rollouts not checked"
        return printable(f"{checked} checked{listed}{unchecked}; {problems}")


def validate_paths(paths: Iterable[Path | str]) -> Findings:
    loaded = loader.load(paths)
    found = list(loaded.findings)
    inventory = loaded.inventory
    try:
        index = Index.of(inventory)
        found += collisions.duplicates(inventory)
        found += collisions.shared_routes(inventory.canaries, index)
    except Exception as exc:
        # No one document is to blame; the first Canary's is where a reader looks first.
        where = inventory.canaries[0].where if inventory.canaries else Where("(all paths)")
        found.append(Finding(where, "", _internal(exc)))
        index = Index()
    for placed in inventory.canaries:
        try:
            found += crosscheck.check_canary(placed, index)
        except Exception as exc:
            found.append(Finding(placed.where, "", _internal(exc)))
    return Findings(found=found, loaded=loaded)


def _internal(exc: Exception) -> str:
    return f"internal error: {type(exc).__name__}: {exc} (please report this)"


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"
