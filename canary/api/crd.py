"""The CustomResourceDefinitions of `Canary`, `MetricTemplate`, `ChatProvider`, from the models.

The models are the one source of the schema: this module turns pydantic's JSON Schema into the
structural OpenAPI v3 subset that the API server accepts (apiextensions `validation.go`): every
`$ref` inlined, `X | None` written as `nullable`, `Literal` as a one-value `enum`, and no `title`,
`const`, `type: null` or `additionalProperties: false` (structural schemas prune unknown fields,
and strict field validation rejects them). A keyword or union it cannot translate is an error,
never dropped, so a model change that has no structural form fails `canary crds` and its test
instead of shipping a CRD the API server refuses.

It also owns a small YAML emitter, because `canary.api` may not import PyYAML and the output must
be byte-for-byte stable for the committed copies in `deploy/crds/`.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic.json_schema import JsonSchemaMode

from canary.api import GROUP, VERSION
from canary.api.base import Model
from canary.api.chat_provider import ChatProvider, ChatProviderSpec
from canary.api.metric_template import MetricTemplate, MetricTemplateSpec
from canary.api.resources import Canary
from canary.api.spec import CanarySpec
from canary.api.status import CanaryStatus

HEADER = "# Generated from the models in canary/api by `canary crds --output-dir deploy/crds`.\n"

# Copied as they are: OpenAPI v3 and JSON Schema agree on their meaning.
_CONSTRAINTS = (
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "multipleOf",
)
# Without meaning to the API server; `examples` is not even a JSONSchemaProps field.
_IGNORED = frozenset({"title", "examples", "$defs"})
_TRANSLATED = frozenset(
    {"description", "type", "enum", "const", "default", "exclusiveMinimum", "exclusiveMaximum"}
    | {"properties", "required", "items", "additionalProperties", *_CONSTRAINTS}
)


def _prose(text: str) -> str:
    """Docstrings unwrapped, since `kubectl explain` wraps text to the terminal itself."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text)


def _structural(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    """`node` with refs inlined and nulls folded into `nullable`; ValueError names what is not."""
    source = dict(node)
    nullable = False
    while "$ref" in source or "anyOf" in source:
        if "$ref" in source:
            target = defs[source.pop("$ref").removeprefix("#/$defs/")]
            # The field's own description and default outrank the referenced class's docstring.
            source = {**target, **source}
            continue
        union = source.pop("anyOf")
        branches = [branch for branch in union if branch != {"type": "null"}]
        if len(branches) != 1:
            raise ValueError(f"{path}: a union of several types has no structural schema")
        nullable = nullable or len(branches) < len(union)
        source = {**branches[0], **source}
    unknown = set(source) - _IGNORED - _TRANSLATED
    if unknown:
        raise ValueError(f"{path}: no structural translation for {', '.join(sorted(unknown))}")
    if "type" not in source:
        raise ValueError(f"{path}: a structural schema needs a type")
    out: dict[str, Any] = {}
    if source.get("description"):
        out["description"] = _prose(source["description"])
    out["type"] = source["type"]
    if nullable:
        out["nullable"] = True
    if "const" in source:
        out["enum"] = [source["const"]]
    elif "enum" in source:
        out["enum"] = list(source["enum"])
    out.update({key: source[key] for key in _CONSTRAINTS if key in source})
    # JSON Schema's exclusive bounds are numbers; OpenAPI v3.0's are flags on minimum/maximum.
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if exclusive in source:
            out[bound] = source[exclusive]
            out[exclusive] = True
    if source.get("default") is not None:
        out["default"] = source["default"]
    if "properties" in source:
        out["properties"] = {
            name: _structural(prop, defs, f"{path}.{name}")
            for name, prop in source["properties"].items()
        }
        if source.get("required"):
            out["required"] = list(source["required"])
    if "items" in source:
        out["items"] = _structural(source["items"], defs, f"{path}[]")
    extra = source.get("additionalProperties")
    # False is implied by pruning and may not sit beside properties in a structural schema.
    if isinstance(extra, Mapping):
        out["additionalProperties"] = _structural(extra, defs, f"{path}.*")
    elif extra is True:
        raise ValueError(f"{path}: open objects need x-kubernetes-preserve-unknown-fields")
    return out


def openapi_schema(
    model: type[Model],
    *,
    mode: JsonSchemaMode = "validation",
    description: str | None = None,
) -> dict[str, Any]:
    """The structural schema of `model`; ValueError, naming the field, if it has none."""
    raw = model.model_json_schema(by_alias=True, mode=mode)
    if description is not None:
        raw["description"] = description
    return _structural(raw, raw.get("$defs", {}), model.__name__)


def _schema(
    resource: type[Model], *, spec: type[Model], status: type[Model] | None
) -> dict[str, Any]:
    kind = resource.model_fields["kind"].default
    fields = resource.model_fields
    properties: dict[str, Any] = {
        "apiVersion": {
            "description": f"The versioned schema of this object: {GROUP}/{VERSION}.",
            "type": "string",
        },
        "kind": {
            "description": f"The REST resource this object represents: {kind}.",
            "type": "string",
        },
        # The API server owns metadata; a structural schema may say no more about it than this.
        "metadata": {"type": "object"},
        # Users write the spec, so it is checked as pydantic validates input.
        "spec": openapi_schema(spec, description=fields["spec"].description),
    }
    if status is not None:
        # The controller writes the status with `to_wire`, so it must admit serialized output.
        properties["status"] = openapi_schema(
            status, mode="serialization", description=fields["status"].description
        )
    return {
        "description": _prose(inspect.cleandoc(resource.__doc__ or kind)),
        "type": "object",
        "properties": properties,
        "required": ["spec"],
    }


def _definition(
    schema: dict[str, Any],
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
    if "status" in schema["properties"]:
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = columns
    version["schema"] = {"openAPIV3Schema": schema}
    names = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "shortNames": short_names,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "names": names, "scope": "Namespaced", "versions": [version]},
    }


# A list of printer columns replaces kubectl's default Age column, so each list repeats it.
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def definitions() -> list[dict[str, Any]]:
    """The CRDs as plain JSON-compatible dicts: Canary, MetricTemplate, ChatProvider."""
    canary = _definition(
        _schema(Canary, spec=CanarySpec, status=CanaryStatus),
        kind="Canary",
        plural="canaries",
        short_names=["cnry"],
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
            {"name": "Failed", "type": "integer", "jsonPath": ".status.failedChecks"},
            # A gate that holds the rollout (confirm-promotion webhook approve...), at a glance.
            {"name": "Waiting", "type": "string", "jsonPath": ".status.waitingFor"},
            {**_AGE},
            {
                "name": "Transitioned",
                "type": "date",
                "jsonPath": ".status.lastTransitionTime",
                "priority": 1,
            },
            {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
        ],
    )
    template = _definition(
        _schema(MetricTemplate, spec=MetricTemplateSpec, status=None),
        kind="MetricTemplate",
        plural="metrictemplates",
        short_names=["mtpl"],
        columns=[
            {
                "name": "Prometheus",
                "type": "string",
                "jsonPath": ".spec.provider.prometheus.address",
            },
            {**_AGE},
        ],
    )
    chat = _definition(
        _schema(ChatProvider, spec=ChatProviderSpec, status=None),
        kind="ChatProvider",
        plural="chatproviders",
        short_names=["chat"],
        columns=[
            {"name": "Channel", "type": "string", "jsonPath": ".spec.channel"},
            {**_AGE},
        ],
    )
    return [canary, template, chat]


def render_files() -> dict[str, str]:
    """File name (controller-gen's `<group>_<plural>.yaml`) to YAML text, as deploy/crds holds."""
    return {
        f"{GROUP}_{doc['spec']['names']['plural']}.yaml": HEADER + dump(doc)
        for doc in definitions()
    }


def render_yaml() -> str:
    """The CRDs as one multi-document YAML stream, ready for `kubectl apply -f -`."""
    return "---\n".join(render_files().values())


# Plain (unquoted) only when no YAML 1.1 or 1.2 reader could take it for anything but a string.
_PLAIN = re.compile(r"[A-Za-z](?:[A-Za-z0-9 ._/()',-]*[A-Za-z0-9._/()'-])?")
_RESERVED = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
# What YAML cannot print raw, reads as a line break (NEL, LS, PS) or as a byte order mark; all of
# it lies below U+10000, so \u can escape it.
_UNPRINTABLE = re.compile(
    "[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no JSON form")
        text = repr(value)
        # YAML 1.1 readers (PyYAML) take 1e-05 for a string; 1.0e-05 is a float to all.
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
            return value
        # A JSON string is a YAML double-quoted scalar, but YAML reads an escaped surrogate pair
        # as two characters and forbids some raw ones, so only those YAML cannot print are escaped.
        quoted = json.dumps(value, ensure_ascii=False)
        return _UNPRINTABLE.sub(lambda match: f"\\u{ord(match[0]):04x}", quoted)
    if value is None:
        return "null"
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _block(value: object, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, Mapping) and value:
        lines: list[str] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"mapping key {key!r} is not a string")
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{_scalar(key)}:")
                lines.extend(_block(item, indent + 1))
            else:
                lines.append(f"{pad}{_scalar(key)}: {_block(item, 0)[0]}")
        return lines
    if isinstance(value, list) and value:
        lines = []
        for item in value:
            # The item's first line moves up beside its dash; the rest stay aligned under it.
            first, *rest = _block(item, indent + 1)
            lines.append(f"{pad}- {first.lstrip()}")
            lines.extend(rest)
        return lines
    if isinstance(value, Mapping):
        return [pad + "{}"]
    if isinstance(value, list):
        return [pad + "[]"]
    return [pad + _scalar(value)]


def dump(document: object) -> str:
    """`document` (dicts, lists, str, int, float, bool, None) as block YAML."""
    return "\n".join(_block(document, 0)) + "\n"
