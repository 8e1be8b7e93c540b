"""A finding: one problem, pinned to the file and document (1-based) that a user has to edit.

Every part of `canary validate` reports through this one value, so the CLI's lines all read
`file:document: field: message` and sort by where they point, whichever check found them. A
finding that matches one of `istioctl analyze`'s messages carries its code (`IST0101`), printed
before the message, so a reader can look the rule up in Istio's documentation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Where:
    """A file, and the 1-based number of a YAML document in it (None: the file as a whole),
    and for an object inside a `kind: List` document, its 0-based place in `items`."""

    file: str
    document: int | None = None
    item: int | None = None

    def __str__(self) -> str:
        where = self.file if self.document is None else f"{self.file}:{self.document}"
        return where if self.item is None else f"{where} items[{self.item}]"

    def sort_key(self) -> tuple[str, int, int]:
        return (self.file, self.document or 0, -1 if self.item is None else self.item)


@dataclass(frozen=True, slots=True)
class Finding:
    where: Where
    field: str
    message: str
    # The Istio analyzer message this finding matches (`IST0109`), or "" for a canary-only one.
    code: str = ""

    def line(self) -> str:
        field = f"{self.field}: " if self.field else ""
        code = f"{self.code} " if self.code else ""
        return f"{self.where}: {field}{code}{self.message}"


class About:
    """Collects findings about one object, each naming it (`Canary shop/accounts spec.x`).

    A cross-object finding sits on one document but concerns two objects; naming the subject
    in the field keeps the line readable when the other object's file is the one to fix.
    """

    def __init__(self, where: Where, subject: str) -> None:
        self.where = where
        self.subject = subject
        self.findings: list[Finding] = []

    def add(self, path: str, message: str, *, code: str = "") -> None:
        self.findings.append(Finding(self.where, f"{self.subject} {path}", message, code))
