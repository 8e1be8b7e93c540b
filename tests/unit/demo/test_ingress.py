"""The ingress scenario's objects, and the live view naming a policy's own versions."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from canary.api import istio
from canary.api.status import CanaryStatus
from canary.cli import main
from canary.demo import ingress, scenario, timeline, view
from canary.engine.observation import Measurement
from canary.localmesh import pilot
from canary.localmesh.gateway import GatewaySpec
from canary.localmesh.pilot.gateway import Listen, translate_gateway
from tests.unit.localmesh.pilot.objects import demo_workloads, sample


def _kinds(bodies: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(body["kind"]): body for body in bodies}


def test_the_scenario_routes_the_external_host_through_the_gateway_only() -> None:
    found = _kinds(ingress.objects())
    assert ingress.uses_gateway(ingress.objects())
    plan = scenario.plan(ingress.objects())
    assert (plan.service, plan.canary_version) == ("demo", "v2")
    shop = found["VirtualService"]
    # The Canary manages the route by its destinations' host, whatever the VS's own hosts.
    route = istio.managed_route(shop, name=scenario.ROUTE, host="demo", namespace="default")
    assert istio.live_weights(route) == {"v1": 100, "v2": 0}
    resources = translate_gateway(
        [found["Gateway"]],
        [shop],
        [found["DestinationRule"]],
        demo_workloads("v1", "v2"),
        labels=ingress.gateway_spec().labels,
        listen={80: Listen(1, https=False), 443: Listen(2, https=True)},
        credentials=lambda name, hosts: (Path(f"/certs/{name}"), Path(f"/certs/{name}")),
        rds_source=lambda name: {},
    )
    names = [config["name"] for config in resources.route_configurations]
    assert names == ["http.80", "https.443.https.ingress.istio-ingress"]
    sidecar = pilot.translate([shop], [found["DestinationRule"]], demo_workloads("v1", "v2"))
    assert sidecar.virtual_host("demo")["routes"][0]["name"] == "default"


def test_the_scenario_is_expected_to_promote_and_the_cli_offers_it() -> None:
    assert scenario.EXPECTED[scenario.Scenario.INGRESS] == scenario.Expected("Succeeded", 100)
    command = main.commands["demo"]
    assert "ingress" in command.params[0].type.choices  # type: ignore[attr-defined]
    assert "ingress" in CliRunner().invoke(main, ["demo", "--help"]).output


class _Metrics:
    """Answers every query about subset v3 with 99.5, and nothing else."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def measure(self, query: str, *, requests_query: str | None = None) -> Measurement:
        self.asked.append(query)
        if "[|]v3[|]" in query:
            return Measurement.of(99.5, query=query)
        return Measurement.no_data(query=query)


def test_a_policy_rolling_v1_to_v3_is_shown_by_its_own_versions() -> None:
    metrics = _Metrics()
    sample = timeline.sample(
        3.0,
        CanaryStatus(),
        metrics,
        service="reviews",
        namespace="default",
        versions=(("v1", "v1"), ("v3", "v3")),
    )
    assert (sample.stable, sample.canary) == ("v1", "v3")
    assert sample.success_rate["v3"] == 99.5
    assert not any("[|]v2[|]" in query for query in metrics.asked)
    console = Console(record=True, width=120)
    console.print(view.render(sample, scenario="good", elapsed_limit=60))
    text = console.export_text()
    assert "v3   0%" in text
    assert "v3 hosts ejected" in text
    assert "v2" not in text
    row = next(line for line in text.splitlines() if line.strip().startswith("v3 "))
    assert "99.50%" in row


def test_the_view_shows_the_gateway_counters_when_there_are_some() -> None:
    sample = timeline.Sample(
        t=1.0,
        phase="Progressing",
        message="",
        canary_weight=10,
        step=0,
        failed_checks=0,
        gateway={"https requests": 12, "2xx": 12, "TLS handshakes": 4},
    )
    console = Console(record=True, width=120)
    console.print(view.render(sample, scenario="ingress", elapsed_limit=60))
    assert "ingress gateway https requests 12 2xx 12 TLS handshakes 4" in console.export_text()
    assert ingress.lines({}, "x") == ["ingress gateway x: its counters could not be read"]


def test_the_mesh_gateway_follows_the_objects_gateways() -> None:
    assert ingress.gateway_spec() == GatewaySpec(
        http=80, https=443, load_host="shop.example.test", load_tls=True
    )
    bookinfo = sample("bookinfo-gateway.yaml")
    assert ingress.gateway_spec(bookinfo) == GatewaySpec(
        http=8080, https=443, load_host="localhost", load_tls=False
    )
    wildcard = ingress.objects()
    wildcard[1]["spec"]["hosts"] = ["*.example.test"]
    wildcard[0]["spec"]["servers"] = wildcard[0]["spec"]["servers"][:1]
    assert ingress.gateway_spec(wildcard).load_host == "www.example.test"
    assert not ingress.gateway_spec(wildcard).load_tls
