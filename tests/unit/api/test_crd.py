"""The CRDs: committed copies match the models, schemas are structural, examples are accepted."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from canary import api, cli
from canary.api import crd, durations, resources
from canary.api.base import Model
from canary.api.status import CanaryStatus

CRDS = Path(__file__).parents[3] / "deploy" / "crds"
REGENERATE = "regenerate with `canary crds --output-dir deploy/crds` and commit the result"

EXAMPLE = yaml.safe_load("""
apiVersion: canary.dev/v1alpha1
kind: Canary
metadata: {name: accounts, namespace: shop}
spec:
  service: {host: accounts, route: primary}
  stable: {subset: v1, labels: {version: v1}}
  canary: {subset: v2, labels: {version: v2}, targetRef: {kind: Deployment, name: accounts-v2}}
  progressDeadline: 10m
  analysis:
    interval: 30s
    threshold: 3
    stepWeights: [5, 10, 25, 50]
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
        interval: 1m
      - name: error-budget
        templateRef: {name: error-budget}
        thresholdRange: {max: 0.5}
""")

TEMPLATE = yaml.safe_load("""
apiVersion: canary.dev/v1alpha1
kind: MetricTemplate
metadata: {name: error-budget}
spec:
  provider: {prometheus: {address: "http://prometheus.istio-system:9090"}}
  query: sum(rate(errors{namespace="{{ namespace }}"}[{{ interval }}]))
""")

# The JSONSchemaProps fields canary's CRDs may use. `examples`, `const`, `$ref`, `title` and the
# combinators are left out on purpose: the API server refuses or ignores them.
ALLOWED = frozenset(
    {"description", "type", "format", "nullable", "enum", "pattern", "default", "multipleOf"}
    | {"minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
    | {"minItems", "maxItems", "properties", "required", "items", "additionalProperties"}
)
PY_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def by_kind() -> dict[str, dict[str, Any]]:
    return {doc["spec"]["names"]["kind"]: doc for doc in crd.definitions()}


def root_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = by_kind()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def structural_problems(node: Any, path: str = "") -> list[str]:
    """What would make the API server refuse `node` as a structural schema, or explain it badly."""
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    problems = [f"{path}: {key} is not allowed" for key in sorted(set(node) - ALLOWED)]
    if node.get("type") not in PY_TYPES:
        problems.append(f"{path}: type {node.get('type')!r} is not a structural type")
    if "default" in node and node["default"] is None:
        problems.append(f"{path}: default null")
    properties = node.get("properties", {})
    if properties and node.get("type") != "object":
        problems.append(f"{path}: properties without type object")
    if properties and "additionalProperties" in node:
        problems.append(f"{path}: properties beside additionalProperties")
    problems += [
        f"{path}: {name} required but absent"
        for name in node.get("required", [])
        if name not in properties
    ]
    for name, prop in properties.items():
        # The API server owns the root metadata and takes no description for it.
        if path == "" and name == "metadata":
            if prop != {"type": "object"}:
                problems.append(".metadata: must be just {type: object}")
            continue
        if not (isinstance(prop, dict) and str(prop.get("description", "")).strip()):
            problems.append(f"{path}.{name}: no description")
        problems += structural_problems(prop, f"{path}.{name}")
    if "items" in node:
        problems += structural_problems(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}.*")
    return problems


def schema_errors(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """A small OpenAPI v3 checker: what the API server validates, unknown fields as errors."""
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    # bool is an int to Python, never to JSON.
    if not isinstance(value, PY_TYPES[schema["type"]]) or (
        isinstance(value, bool) and schema["type"] != "boolean"
    ):
        return [f"{path}: not {schema['type']}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: does not match pattern")
    for key, holds in (
        ("minLength", lambda limit: len(value) >= limit),
        ("minItems", lambda limit: len(value) >= limit),
        ("minimum", lambda limit: value >= limit),
        ("maximum", lambda limit: value <= limit),
    ):
        if key in schema and not holds(schema[key]):
            errors.append(f"{path}: violates {key}")
    if schema["type"] == "object":
        properties = schema.get("properties", {})
        errors += [
            f"{path}.{name}: required" for name in schema.get("required", []) if name not in value
        ]
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(properties[name], item, f"{path}.{name}")
            elif "additionalProperties" in schema:
                errors += schema_errors(schema["additionalProperties"], item, f"{path}.{name}")
            elif properties:  # only the root metadata has neither, and is the API server's
                errors.append(f"{path}.{name}: unknown field")
    if schema["type"] == "array":
        for index, item in enumerate(value):
            errors += schema_errors(schema["items"], item, f"{path}[{index}]")
    return errors


def test_committed_crds_are_what_the_models_generate() -> None:
    """A model change without regenerated CRDs fails here, and the message says how to fix it."""
    generated = crd.render_files()
    assert sorted(path.name for path in CRDS.glob("*.yaml")) == sorted(generated), REGENERATE
    for name, text in generated.items():
        assert (CRDS / name).read_text(encoding="utf-8") == text, (
            f"deploy/crds/{name}: {REGENERATE}"
        )


def test_canary_crds_prints_both_committed_files_as_one_stream() -> None:
    result = CliRunner().invoke(cli.main, ["crds"])
    assert result.exit_code == 0, result.output
    committed = [(CRDS / name).read_text(encoding="utf-8") for name in crd.render_files()]
    assert result.output == "---\n".join(committed)
    assert list(yaml.safe_load_all(result.output)) == crd.definitions()


def test_canary_crds_output_dir_writes_one_file_per_crd(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.main, ["crds", "--output-dir", str(tmp_path / "crds")])
    assert result.exit_code == 0, result.output
    written = {path.name: path.read_text() for path in (tmp_path / "crds").iterdir()}
    assert written == crd.render_files()


def test_names_scope_and_api_version_are_the_models() -> None:
    assert f"{api.GROUP}/{api.VERSION}" == api.API_VERSION
    canary, template, chat = crd.definitions()
    assert canary["metadata"]["name"] == "canaries.canary.dev"
    assert template["metadata"]["name"] == "metrictemplates.canary.dev"
    assert chat["metadata"]["name"] == "chatproviders.canary.dev"
    for doc, kind in ((canary, "Canary"), (template, "MetricTemplate"), (chat, "ChatProvider")):
        assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
        assert doc["spec"]["group"] == api.GROUP
        assert doc["spec"]["scope"] == "Namespaced"
        assert doc["spec"]["names"]["kind"] == kind
        [version] = doc["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == (api.VERSION, True, True)


@pytest.mark.parametrize("kind", ["Canary", "MetricTemplate", "ChatProvider"])
def test_schema_is_structural_and_every_property_is_described(kind: str) -> None:
    assert structural_problems(root_schema(kind)) == []


def test_structural_check_catches_what_the_api_server_refuses() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A", "description": "x"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "x"},
            "c": {"type": "string", "const": "x", "description": "x"},
            "d": {"type": "string"},
            "e": {"type": "null", "description": "x"},
            "f": {
                "type": "object",
                "properties": {},
                "x-kubernetes-preserve-unknown-fields": True,
                "description": "x",
            },
        },
    }
    found = "\n".join(structural_problems(bad))
    for expected in (
        ".a: $ref",
        ".b: anyOf",
        ".b: type None",
        ".c: const",
        ".d: no description",
        ".e: type 'null'",
        ".f: x-kubernetes-preserve-unknown-fields",
    ):
        assert expected in found


@pytest.mark.parametrize("kind", ["Canary", "MetricTemplate"])
def test_top_level_fields_are_the_models_and_metadata_is_the_api_servers(kind: str) -> None:
    schema = root_schema(kind)
    model = resources.KINDS[kind]
    aliases = {field.alias or name for name, field in model.model_fields.items()}
    assert set(schema["properties"]) == aliases
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["properties"]["apiVersion"]["type"] == "string"
    assert schema["properties"]["kind"]["type"] == "string"
    assert schema["required"] == ["spec"]
    assert schema["description"] == " ".join((model.__doc__ or "").split())


def test_required_fields_follow_the_models() -> None:
    spec = root_schema("Canary")["properties"]["spec"]
    assert spec["required"] == ["service", "stable", "canary", "analysis"]
    assert spec["properties"]["service"]["required"] == ["host"]
    metric = spec["properties"]["analysis"]["properties"]["metrics"]["items"]
    # thresholdRange is required unless compare is set: the model says so, the schema cannot.
    assert metric["required"] == ["name"]
    assert spec["properties"]["analysis"]["properties"]["interval"]["pattern"] == durations.PATTERN


def test_canary_has_a_status_subresource_and_printer_columns() -> None:
    [version] = by_kind()["Canary"]["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert {
        name: (c["jsonPath"], c["type"]) for name, c in columns.items() if not c.get("priority")
    } == {
        "Phase": (".status.phase", "string"),
        "Weight": (".status.canaryWeight", "integer"),
        "Failed": (".status.failedChecks", "integer"),
        "Waiting": (".status.waitingFor", "string"),
        "Age": (".metadata.creationTimestamp", "date"),
    }
    assert columns["Message"]["priority"] == 1
    assert "subresources" not in by_kind()["MetricTemplate"]["spec"]["versions"][0]


@pytest.mark.parametrize("kind", ["Canary", "MetricTemplate"])
def test_printer_columns_point_at_fields_of_their_type(kind: str) -> None:
    """A renamed status field would leave a column that is always empty; this catches it."""
    [version] = by_kind()[kind]["spec"]["versions"]
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            continue
        node = root_schema(kind)
        for part in column["jsonPath"].removeprefix(".").split("."):
            node = node["properties"][part]
        wanted = {"date": ("string", "date-time")}.get(column["type"], (column["type"], None))
        assert (node["type"], node.get("format")) == wanted, column["name"]


def test_the_issue_example_is_accepted_by_the_schema_and_the_model() -> None:
    assert schema_errors(root_schema("Canary"), EXAMPLE) == []
    assert resources.parse(EXAMPLE).to_wire()["spec"]["service"]["host"] == "accounts"


def test_a_metric_template_is_accepted_by_the_schema_and_the_model() -> None:
    assert schema_errors(root_schema("MetricTemplate"), TEMPLATE) == []
    resources.parse(TEMPLATE)


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (["spec", "service", "host"], None, ".spec.service.host: required"),
        (["spec", "stable", "subset"], "V1", ".spec.stable.subset: does not match pattern"),
        (["spec", "progressDeadline"], "10x", ".spec.progressDeadline: does not match pattern"),
        (["spec", "analysis", "stepWeights"], [], ".spec.analysis.stepWeights: violates minItems"),
        (["spec", "analysis", "threshold"], 0, ".spec.analysis.threshold: violates minimum"),
        (["spec", "canary", "targetRef", "kind"], "StatefulSet", "'StatefulSet' not in enum"),
        (["spec", "service", "bogus"], 1, ".spec.service.bogus: unknown field"),
        (["spec", "service", "port"], 70000, ".spec.service.port: violates maximum"),
        (["spec", "suspend"], "maybe", ".spec.suspend: not boolean"),
        (["spec", "analysis", "threshold"], "many", ".spec.analysis.threshold: not integer"),
    ],
)
def test_schema_and_model_reject_the_same_bad_field(
    path: list[str], value: Any, error: str
) -> None:
    document = copy.deepcopy(EXAMPLE)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    assert error in "\n".join(schema_errors(root_schema("Canary"), document))
    with pytest.raises(pydantic.ValidationError):
        resources.parse(document)


def test_a_metric_with_a_bad_no_data_policy_is_rejected() -> None:
    document = copy.deepcopy(EXAMPLE)
    document["spec"]["analysis"]["metrics"][0]["onNoData"] = "maybe"
    errors = schema_errors(root_schema("Canary"), document)
    assert errors == [".spec.analysis.metrics[0].onNoData: 'maybe' not in enum"]


def test_the_status_the_controller_writes_is_accepted() -> None:
    status = CanaryStatus.model_validate(
        {
            "phase": "Progressing",
            "canaryWeight": 25,
            "step": 2,
            "lastTransitionTime": "2025-01-01T12:00:00Z",
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "StepStarted",
                    "lastTransitionTime": "2025-01-01T12:00:00Z",
                }
            ],
        }
    )
    schema = root_schema("Canary")["properties"]["status"]
    assert schema_errors(schema, status.to_wire()) == []
    assert schema_errors(schema, CanaryStatus().to_wire()) == []
    assert schema_errors(schema, {**status.to_wire(), "canaryWeight": 101}) == [
        ".canaryWeight: violates maximum"
    ]


def test_a_model_with_no_structural_form_is_refused() -> None:
    class Either(Model):
        value: int | str

    class Open(Model):
        anything: dict[str, Any]

    with pytest.raises(ValueError, match=r"Either\.value: a union of several types"):
        crd.openapi_schema(Either)
    with pytest.raises(ValueError, match=r"Open\.anything: open objects"):
        crd.openapi_schema(Open)


def test_optional_literal_and_exclusive_bound_translate() -> None:
    class Knobs(Model):
        mode: str | None = pydantic.Field(default=None, description="m")
        level: int = pydantic.Field(default=1, gt=0, description="l")

    schema = crd.openapi_schema(Knobs)
    assert schema["properties"]["mode"] == {"description": "m", "type": "string", "nullable": True}
    assert schema["properties"]["level"] == {
        "description": "l",
        "type": "integer",
        "minimum": 0,
        "exclusiveMinimum": True,
        "default": 1,
    }


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON)
def test_yaml_emitter_round_trips_any_json_value(value: Any) -> None:
    assert yaml.safe_load(crd.dump(value)) == value


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "No",
        "on",
        "null",
        "1m",
        "0.5",
        "a: b",
        "a #b",
        "-x",
        "",
        " x",
        "x ",
        "\x7f",
        "\U00010000",
    ],
)
def test_yaml_emitter_quotes_what_a_reader_would_not_take_for_a_string(text: str) -> None:
    assert yaml.safe_load(crd.dump({"k": text})) == {"k": text}
