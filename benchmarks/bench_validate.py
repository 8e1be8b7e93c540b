"""Time `canary validate` on 1,000 Canaries, each with its VirtualService and DestinationRule,
and on 10,000 Canaries that all name one route (each must get one line, not a list of the rest).

A GitOps repository of a large platform holds the first many, and CI runs the check on every
push, so it has to stay well under a couple of seconds. The second is bad input at scale: a
generator run wild must not make the check quadratic, in time or in the length of its lines;
its peak memory is measured in a child process of its own (`ru_maxrss`), so that the first
case's allocations do not count. Run: `python benchmarks/bench_validate.py`.

A figure, not a gate (`.ci/run` promises benchmarks are not pass/fail): the time and its verdict
against the target are printed and the exit code stays 0 however slow a shared machine is. It
exits 1 only when the generated Canaries do not validate, since then the figure measures nothing.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

from canary.validation import report

CANARIES = 1000
TARGET_SECONDS = 2.0
SHARING = 10_000
SHARING_TARGET_SECONDS = 10.0
SHARING_TARGET_MIB = 500

TEMPLATE = """\
apiVersion: canary.dev/v1alpha1
kind: Canary
metadata:
  name: svc-{n}
  namespace: team-{team}
spec:
  service:
    host: svc-{n}
    route: primary
  stable:
    subset: stable
    labels: {{app: svc-{n}, track: stable}}
  canary:
    subset: canary
    labels: {{app: svc-{n}, track: canary}}
  analysis:
    interval: 1m
    checkInterval: 15s
    stepWeight: 10
    maxWeight: 50
    metrics:
      - name: request-success-rate
        minRequests: 50
        thresholdRange: {{min: 99}}
      - name: request-duration
        thresholdRange: {{max: 500}}
    webhooks:
      - name: load
        url: http://loadtester.team-{team}/run
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-{n}
  namespace: team-{team}
spec:
  hosts: [svc-{n}]
  http:
    - name: primary
      route:
        - destination: {{host: svc-{n}, subset: stable}}
          weight: 100
        - destination: {{host: svc-{n}, subset: canary}}
          weight: 0
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc-{n}
  namespace: team-{team}
spec:
  host: svc-{n}
  trafficPolicy:
    outlierDetection: {{consecutive5xxErrors: 3, interval: 30s, baseEjectionTime: 30s}}
  subsets:
    - name: stable
      labels: {{app: svc-{n}, track: stable}}
    - name: canary
      labels: {{app: svc-{n}, track: canary}}
"""


# One route, and many Canaries on it; only `n` differs between them.
SHARED_ROUTE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
    - name: primary
      route:
        - destination: {host: web, subset: stable}
          weight: 100
        - destination: {host: web, subset: canary}
          weight: 0
"""
SHARING_CANARY = """\
---
apiVersion: canary.dev/v1alpha1
kind: Canary
metadata: {{name: web-{n}, namespace: shop}}
spec:
  service: {{host: web, virtualService: web, route: primary}}
  stable: {{subset: stable}}
  canary: {{subset: canary}}
  analysis: {{stepWeights: [10, 50]}}
"""


def main() -> int:
    status = _one_per_service()
    _sharing_in_a_child()
    return status


def _sharing_in_a_child() -> None:
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_sharing)
    child.start()
    child.join(timeout=300)
    if child.exitcode is None:
        child.terminate()
        child.join()
        print(f"validate: {SHARING} canaries on one route did not finish in 300 s")


def _sharing() -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "shared.yaml"
        text = SHARED_ROUTE + "".join(SHARING_CANARY.format(n=n) for n in range(SHARING))
        file.write_text(text)
        started = time.perf_counter()
        findings = report.validate_paths([file])
        lines = list(findings.lines())
        elapsed = time.perf_counter() - started
    # ru_maxrss is in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    longest = max((len(line) for line in lines), default=0)
    fast = "within" if elapsed < SHARING_TARGET_SECONDS else "OVER"
    small = "within" if peak_mib < SHARING_TARGET_MIB else "OVER"
    print(
        f"validate: {SHARING} canaries on one route in {elapsed:.2f} s ({fast} the target of "
        f"{SHARING_TARGET_SECONDS:.0f} s), peak RSS {peak_mib:.0f} MiB ({small} the target of "
        f"{SHARING_TARGET_MIB} MiB); {len(lines)} lines, the longest {longest} characters"
    )


def _one_per_service() -> int:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for n in range(CANARIES):
            team = root / f"team-{n % 20}"
            team.mkdir(exist_ok=True)
            (team / f"svc-{n}.yaml").write_text(TEMPLATE.format(n=n, team=n % 20))
        started = time.perf_counter()
        findings = report.validate_paths([root])
        elapsed = time.perf_counter() - started
    verdict = "within" if elapsed < TARGET_SECONDS else "OVER"
    print(
        f"validate: {CANARIES} canaries in {elapsed:.2f} s "
        f"({verdict} the target of {TARGET_SECONDS:.0f} s)"
    )
    print(findings.summary())
    if findings.failed:
        print("\n".join(list(findings.lines())[:5]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
