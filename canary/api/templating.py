"""`{{ name }}` substitution for metric queries, strict about unknown names.

A query with a variable nobody set would reach Prometheus as a selector that matches nothing,
which is the "no values found" support thread in waiting (flagger#1365); here it is an error that
names the variable and lists the ones that exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class TemplateError(ValueError):
    pass


def variables(template: str) -> frozenset[str]:
    return frozenset(_VARIABLE.findall(template))


def render(template: str, values: Mapping[str, str]) -> str:
    missing = sorted(variables(template) - values.keys())
    if missing:
        known = ", ".join(sorted(values)) or "none"
        raise TemplateError(f"unknown template variable(s) {', '.join(missing)} (known: {known})")
    return _VARIABLE.sub(lambda match: values[match.group(1)], template)
