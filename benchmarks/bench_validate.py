"""Time `canary validate` on 1,000 Canaries, each with its VirtualService and DestinationRule.

A GitOps repository of a large platform holds this many, and CI runs the check on every push,
so it has to stay well under a couple of seconds. Run: `python benchmarks/bench_validate.py`.

A figure, not a gate (`.ci/run` promises benchmarks are not pass/fail): the time and its verdict
against the target are printed and the exit code stays 0 however slow a shared machine is. It
exits 1 only when the generated Canaries do not validate, since then the figure measures nothing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from canary.validation import report

CANARIES = 1000
TARGET_SECONDS = 2.0

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


def main() -> int:
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
