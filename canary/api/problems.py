"""pydantic's ValidationError as one line per problem: `field.path: message`, as on the wire.

Users write YAML, so a problem names the field the way their file spells it: camelCase aliases,
list indexes in brackets (`spec.analysis.stepWeights[1]`), never pydantic's tuple locations or
its "Value error, " prefix. The models' own validators raise messages that may start with a
path relative to where they run (`stepWeights[1]: ...` raised on `spec.analysis`); that prefix
is joined onto the location, so every line points at the field to edit, whichever rule caught it.

Pure (stdlib and pydantic only), so the controller can put the same lines into an `InvalidSpec`
condition that `canary validate` prints.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

# A relative path at the start of a validator's message, e.g. `stepWeights[1]: ` or
# `canary.subset: `; only taken as a path when its first name is a field of the model there.
_PREFIX = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): (.+)$", re.S)
# A message that opens with a field's name and its value, e.g. `checkInterval (2m) is longer
# than interval (1m)`: the problem is that field's, so the path names it and the text stays whole.
_SUBJECT = re.compile(r"^([A-Za-z_]\w*) \(")
_FIRST_NAME = re.compile(r"^[A-Za-z_]\w*")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][\w-]*$")
_INPUT_LIMIT = 60

# Messages that say the same thing in YAML's words instead of Python's.
_REPHRASED = {
    "missing": "required",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    # YAML's .nan and .inf: a bound of either can never be met as the user means.
    "finite_number": "must be a finite number, not NaN or an infinity",
}
# Kinds whose message already shows the value, or where there is no value to show.
_NO_INPUT = frozenset({"missing", "extra_forbidden", "value_error", "assertion_error"})


class Problem(NamedTuple):
    path: str
    message: str

    def line(self) -> str:
        return f"{self.path}: {self.message}"


def lines(error: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One `field.path: message` line per error; `model` is the class that was validated.

    Without `model` the lines are still right, but an unknown field cannot list the known ones.
    """
    return [problem.line() for problem in problems(error, model)]


def problems(error: ValidationError, model: type[BaseModel] | None = None) -> list[Problem]:
    return [describe(detail, model) for detail in error.errors()]


def describe(detail: Mapping[str, Any], model: type[BaseModel] | None = None) -> Problem:
    """The problem of one entry of `ValidationError.errors()`."""
    loc = tuple(detail.get("loc", ()))
    kind = str(detail.get("type", ""))
    message = _message(kind, str(detail.get("msg", "")))
    path = format_path(loc)

    if kind == "extra_forbidden":
        message = _unknown_field(loc, model)
    elif kind in _REPHRASED:
        message = _REPHRASED[kind]
    if kind in ("value_error", "assertion_error"):
        path, message = _relative(path, message, loc, model)
    if kind not in _NO_INPUT and "input" in detail:
        message = f"{message} (got {_show(detail['input'])})"
    return Problem(path or "(document)", _one_line(message))


def format_path(loc: Sequence[int | str]) -> str:
    """`('spec', 'analysis', 'stepWeights', 1)` as `spec.analysis.stepWeights[1]`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            path += f".{part}" if path else part
        else:
            # Map keys such as label names (`app.kubernetes.io/name`) hold dots of their own.
            path += f"[{part!r}]"
    return path


def model_at(model: type[BaseModel] | None, loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that the value at `loc` is validated against, if it is a model."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return None
    found = _models(annotation)
    return found[0] if found else None


def field_names(model: type[BaseModel]) -> list[str]:
    """The names of the fields as written on the wire (the alias when there is one)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _message(kind: str, text: str) -> str:
    if kind == "value_error":
        text = text.removeprefix("Value error, ")
    elif kind == "assertion_error":
        text = text.removeprefix("Assertion failed, ")
    # pydantic's messages are sentences; ours follow a colon, so they start in lower case.
    if text[:1].isupper() and text[1:2].islower():
        text = text[0].lower() + text[1:]
    return text


def _unknown_field(loc: Sequence[int | str], model: type[BaseModel] | None) -> str:
    owner = model_at(model, loc[:-1])
    if owner is None:
        return "unknown field"
    known = field_names(owner)
    name = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown field ({hint}known: {', '.join(known)})"


def _is_field(prefix: str, loc: Sequence[int | str], model: type[BaseModel] | None) -> bool:
    owner = model_at(model, loc)
    if owner is None:
        # Nothing to check against: trust the shape, since validators write paths this way.
        return model is None
    first = _FIRST_NAME.match(prefix)
    return first is not None and first.group(0) in field_names(owner)


def _relative(
    path: str, message: str, loc: Sequence[int | str], model: type[BaseModel] | None
) -> tuple[str, str]:
    prefix = _PREFIX.match(message)
    if prefix and _is_field(prefix.group(1), loc, model):
        return _join(path, prefix.group(1)), prefix.group(2)
    subject = _SUBJECT.match(message)
    if subject and model_at(model, loc) is not None and _is_field(subject.group(1), loc, model):
        return _join(path, subject.group(1)), message
    return path, message


def _join(path: str, relative: str) -> str:
    if not path:
        return relative
    return f"{path}.{relative}"


def _step(annotation: Any, part: int | str) -> Any:
    """The annotation of the value one location step inside a value of `annotation`."""
    for candidate in _alternatives(annotation):
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if isinstance(part, int) and origin in (list, tuple, Sequence) and args:
            return args[0]
        if isinstance(part, str) and origin in (dict, Mapping) and len(args) == 2:
            return args[1]
        if isinstance(part, str) and _is_model(candidate):
            for name, info in candidate.model_fields.items():
                if part in (info.alias, name):
                    return info.annotation
    return None


def _alternatives(annotation: Any) -> Iterator[Any]:
    """The members of an optional or union annotation, or the annotation itself."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            if member is not type(None):
                yield from _alternatives(member)
    else:
        yield annotation


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [candidate for candidate in _alternatives(annotation) if _is_model(candidate)]


def _is_model(candidate: Any) -> typing.TypeGuard[type[BaseModel]]:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _show(value: Any) -> str:
    """The value as YAML would spell it; a whole mapping or list would not fit on one line."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= _INPUT_LIMIT else text[: _INPUT_LIMIT - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())
