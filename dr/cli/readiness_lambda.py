"""AWS Lambda entry point of the scheduled readiness run (dr/infra/readiness_alarms.py).

The DR stack's EventBridge rule invokes it every ``app.readiness.scheduleMinutes``: it runs the
same checks as ``dr readiness`` and publishes them (``--publish``) in the DR region. The image
carries the toolkit and the stack files (``DR_STACK_DIR``, default ``/var/task/stacks``); AWS
credentials are the function's role, Kubernetes access the role's EKS access entries (no
kubeconfig: the EKS API and a token from the role, as `dr` does without a context).
"""

from __future__ import annotations

import os
from typing import Any


def handler(event: dict[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.procedures.readiness import check_readiness
    from dr.procedures.readiness_metrics import publish
    from dr.topology import load_estate

    estate = load_estate(os.environ.get("DR_STACK_DIR", "/var/task/stacks"), os.environ.get("DR_STACK"))
    readers = ClientProvider(read_only=True)
    kube = KubeFactory(kubeconfig=None, clients=readers, read_only=True)
    try:
        report = check_readiness(estate, readers, kube)
    finally:
        kube.close()
    published = publish(report, estate, ClientProvider())
    # The result is in the function's log; never a secret (checks carry host:port at most).
    return {
        "status": report.status,
        "failed": [c.name for c in report.failed],
        "published": published.to_dict(),
    }
