"""`{{ name }}` substitution for metric queries, strict about unknown names and spellings.

A query with a variable nobody set would reach Prometheus as a selector that matches nothing,
which is the "no values found" support thread in waiting (flagger#1365); here it is an error that
names the variable and lists the ones that exist.

Every `{{ ... }}` in a text is ours or an error: ours is one name, letters, digits and `_`, with
any spacing inside the braces (`{{namespace}}`, `{{ namespace }}`). Anything else would reach
the backend unrendered, so each other spelling is refused with a hint: Flagger's
`{{ variables.x }}` and Argo Rollouts' `{{args.x}}` are our `{{ x }}` with x in the metric's
`templateVariables`; a Go template's `{{ .Values.x }}` is Helm's, left unrendered. A `{` right
before `{{` stays a literal brace, so `metric{{{ selector }}}` is `metric{` + a variable + `}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_EXPRESSION = re.compile(r"\{\{(?!\{)(.*?)\}\}", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"(variables|args)\s*\.\s*([A-Za-z0-9_.-]+)")
_DASHED = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class TemplateError(ValueError):
    pass


def variables(template: str) -> frozenset[str]:
    """The names of the variables the text uses, in our spelling (other spellings: `problems`)."""
    return frozenset(
        inner.strip() for inner in _EXPRESSION.findall(template) if _NAME.fullmatch(inner.strip())
    )


def is_name(text: str) -> bool:
    """Whether `text` can be a variable of ours (`{{ text }}`)."""
    return _NAME.fullmatch(text) is not None


def problems(template: str) -> list[str]:
    """One message per `{{ ... }}` that is not ours, and for a `{{` never closed; [] if none."""
    found = [
        _foreign(match.group(0), match.group(1).strip())
        for match in _EXPRESSION.finditer(template)
        if not _NAME.fullmatch(match.group(1).strip())
    ]
    if "{{" in _EXPRESSION.sub("", template):
        found.append("a {{ is never closed by }}")
    return found


def render(template: str, values: Mapping[str, str]) -> str:
    refused = problems(template)
    if refused:
        raise TemplateError("; ".join(refused))
    missing = sorted(variables(template) - values.keys())
    if missing:
        known = ", ".join(sorted(values)) or "none"
        raise TemplateError(f"unknown template variable(s) {', '.join(missing)} (known: {known})")
    return _EXPRESSION.sub(lambda match: values[match.group(1).strip()], template)


def _foreign(written: str, inner: str) -> str:
    written = " ".join(written.split())
    if not inner:
        return f"{written} names no variable"
    dotted = _DOTTED.fullmatch(inner)
    if dotted:
        whose = "Flagger's" if dotted.group(1) == "variables" else "Argo Rollouts'"
        ours = our_name(dotted.group(2))
        return (
            f"{written} is {whose} spelling; ours is {{{{ {ours} }}}}, with {ours} in the "
            "metric's templateVariables"
        )
    if inner.startswith("."):
        return (
            f"{written} is a Go template (Helm) expression, left unrendered; render the chart "
            "first (to keep one of ours in a chart, write {{ `{{ name }}` }})"
        )
    if inner.startswith("-") or inner.endswith("-"):
        return f"{written}: trim markers are Go template's, not ours; write {{{{ name }}}}"
    if _DASHED.fullmatch(inner):
        return (
            f"{written} is not a variable name (letters, digits and _ only); "
            f"did you mean {{{{ {our_name(inner)} }}}}?"
        )
    return (
        f"{written} is not a variable of ours (we substitute {{{{ name }}}} only, no expressions)"
    )


def our_name(name: str) -> str:
    """The closest name we accept: `service-name` → `service_name`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)
