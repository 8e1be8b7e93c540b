"""`canary.validation.loader`: files and folders into numbered documents, never a traceback."""

from __future__ import annotations

from pathlib import Path

from canary.validation import loader, reading
from canary.validation.findings import Where
from tests.unit.validation.documents import canary, destination_rule, virtual_service, write


def _lines(loaded: loader.Loaded) -> list[str]:
    return [finding.line() for finding in loaded.findings]


def test_documents_are_numbered_from_one_counting_empty_ones(tmp_path: Path) -> None:
    """`file:3` is the third `---` part, even when an earlier part is empty (and skipped)."""
    file = tmp_path / "all.yaml"
    body = write(tmp_path / "one.yaml", canary()).read_text()
    file.write_text(f"---\n# only a comment\n---\n{body}---\n[1, 2]\n")
    loaded = loader.load([file])
    assert [p.where for p in loaded.inventory.canaries] == [Where(str(file), 2)]
    assert _lines(loaded) == [f"{file}:3: a list, not a Kubernetes object"]


def test_a_yaml_syntax_error_is_one_finding_with_its_line(tmp_path: Path) -> None:
    """The documents before the error are still read; the broken one is named with its line."""
    file = tmp_path / "broken.yaml"
    body = write(tmp_path / "one.yaml", canary()).read_text()
    file.write_text(f"{body}---\nkind: Canary\nspec:\n  service: [unclosed\n")
    loaded = loader.load([file])
    assert len(loaded.inventory.canaries) == 1
    [line] = _lines(loaded)
    assert line.startswith(f"{file}:2: YAML syntax: ")
    assert "(line " in line


def test_a_duplicate_key_is_refused_as_kubectl_does(tmp_path: Path) -> None:
    """PyYAML would keep the second `analysis:` silently; here it is a finding on its line."""
    file = tmp_path / "twice.yaml"
    file.write_text("apiVersion: canary.dev/v1alpha1\nkind: Canary\nkind: Canary\n")
    [line] = _lines(loader.load([file]))
    assert line == f"{file}:1: YAML syntax: duplicate key 'kind' (line 3, column 1)"


def test_folders_are_read_recursively_in_sorted_order_skipping_hidden_ones(
    tmp_path: Path,
) -> None:
    write(tmp_path / "b" / "z.yml", canary())
    write(tmp_path / "a.yaml", virtual_service())
    write(tmp_path / "b" / "c.yaml", destination_rule())
    write(tmp_path / ".git" / "x.yaml", [1])
    (tmp_path / "notes.txt").write_text("not yaml: [")
    files = list(reading.files([tmp_path], []))
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.yaml", "b/c.yaml", "b/z.yml"]


def test_a_file_given_twice_is_read_once(tmp_path: Path) -> None:
    file = write(tmp_path / "one.yaml", canary())
    loaded = loader.load([tmp_path, file])
    assert len(loaded.inventory.canaries) == 1
    assert loaded.findings == []


def test_a_missing_path_is_a_finding(tmp_path: Path) -> None:
    loaded = loader.load([tmp_path / "nope.yaml"])
    assert _lines(loaded) == [f"{tmp_path / 'nope.yaml'}: no such file or folder"]


def test_istio_objects_are_kept_as_dicts_and_other_kinds_ignored(tmp_path: Path) -> None:
    """VirtualService, DestinationRule and Gateway pass through, a Deployment is read for its
    pods' labels; a ConfigMap is no error."""
    gateway = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "g"}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    vs = virtual_service()
    vs["spec"]["tcp"] = [{"whatever": {"istio": "adds next"}}]
    file = write(tmp_path / "mix.yaml", vs, destination_rule(), gateway, deployment, config)
    loaded = loader.load([file])
    assert loaded.findings == []
    assert [placed.obj for placed in loaded.inventory.workloads] == [deployment]
    assert loaded.inventory.virtual_services[0].obj == vs
    assert len(loaded.inventory.destination_rules) == 1
    assert len(loaded.inventory.gateways) == 1
    assert loaded.ignored == 1


def test_every_served_istio_version_is_read_and_others_are_refused(tmp_path: Path) -> None:
    documents = []
    for version in ("v1", "v1beta1", "v1alpha3", "v2"):
        vs = virtual_service(f"web-{version}")
        vs["apiVersion"] = f"networking.istio.io/{version}"
        documents.append(vs)
    file = write(tmp_path / "versions.yaml", *documents)
    loaded = loader.load([file])
    assert len(loaded.inventory.virtual_services) == 3
    [line] = _lines(loaded)
    assert line.startswith(f"{file}:4: apiVersion: 'networking.istio.io/v2' is not served")


def test_model_errors_become_findings_on_their_document(tmp_path: Path) -> None:
    file = write(tmp_path / "two.yaml", canary(), canary(analysis={"stepWeights": [50, 10]}))
    loaded = loader.load([file])
    assert _lines(loaded) == [
        f"{file}:2: spec.analysis.stepWeights[1]: 10 does not increase on 50; "
        "weights must be strictly increasing"
    ]


def test_an_unknown_canary_dev_kind_and_a_missing_kind_are_findings(tmp_path: Path) -> None:
    file = write(
        tmp_path / "kinds.yaml",
        {"apiVersion": "canary.dev/v1alpha1", "kind": "CanaryPolicy", "metadata": {"name": "p"}},
        {"apiVersion": "v1", "metadata": {"name": "no-kind"}},
    )
    assert _lines(loader.load([file])) == [
        f"{file}:1: kind: 'CanaryPolicy' is not a canary.dev kind "
        "(known: Canary, MetricTemplate, ChatProvider)",
        f"{file}:2: kind: required",
    ]


def test_an_istio_object_without_a_name_is_a_finding(tmp_path: Path) -> None:
    vs = virtual_service()
    del vs["metadata"]["name"]
    file = write(tmp_path / "vs.yaml", vs)
    assert _lines(loader.load([file])) == [f"{file}:1: metadata.name: required (a string)"]


def test_a_list_is_unwrapped_and_each_item_placed_by_its_index(tmp_path: Path) -> None:
    """As `kubectl get -o yaml` prints them: `kind: List`, or `VirtualServiceList` and such."""
    broken = canary(analysis={"stepWeights": [50, 10]})
    listed = {"apiVersion": "v1", "kind": "List", "items": [canary(), "text", broken]}
    typed = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualServiceList",
        "metadata": {"resourceVersion": "1"},
        "items": [virtual_service()],
    }
    nested = {"apiVersion": "v1", "kind": "List", "items": [{**listed, "items": []}]}
    scalar = {"apiVersion": "v1", "kind": "List", "items": 3}
    file = write(tmp_path / "lists.yaml", listed, typed, nested, scalar)
    loaded = loader.load([file])
    assert [p.where for p in loaded.inventory.canaries] == [Where(str(file), 1, 0)]
    assert [p.where for p in loaded.inventory.virtual_services] == [Where(str(file), 2, 0)]
    assert _lines(loaded) == [
        f"{file}:1 items[1]: a string, not a Kubernetes object",
        f"{file}:1 items[2]: spec.analysis.stepWeights[1]: 10 does not increase on 50; "
        "weights must be strictly increasing",
        f"{file}:3 items[0]: a List inside a List's items; not unwrapped",
        f"{file}:4: items: expected a list of objects",
    ]
    assert loaded.kinds == {"Canary": 2, "VirtualService": 1, "": 3}


def test_flagger_and_argo_rollouts_objects_get_a_hint_and_are_not_counted(tmp_path: Path) -> None:
    flagger = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "a"}}
    argo = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate"}
    argo_cd = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application"}
    file = write(tmp_path / "foreign.yaml", flagger, argo, argo_cd)
    loaded = loader.load([file])
    lines = _lines(loaded)
    assert [line.partition(";")[0] for line in lines] == [
        f"{file}:1: flagger.app/v1beta1 Canary is Flagger's, not checked",
        f"{file}:2: argoproj.io/v1alpha1 AnalysisTemplate is Argo Rollouts', not checked",
    ]
    assert "translate it to canary.dev/v1alpha1 Canary: " in lines[0]
    assert "{{args.x}} -> {{ x }}" in lines[1]
    assert (loaded.foreign, loaded.ignored, dict(loaded.kinds)) == (2, 1, {"Application": 1})
