#!/usr/bin/env python3
"""Preview the Pulumi program for both stacks without the Pulumi CLI (mocks) and print a tree.

    python scripts/preview.py [--stack-dir stacks] [--stack prod --stack dr] [--json]

For each stack: component -> resources with their physical names and key DR properties, plus
the DR policy pack's verdict. Exits 1 when the program fails or a policy is violated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.tree import Tree  # noqa: E402

from dr.errors import DrError  # noqa: E402
from dr.infra.mockrun import Declared, MockRun, run_isolated  # noqa: E402
from dr.policy.validators import violations  # noqa: E402
from dr.topology import default_stack, read_stack  # noqa: E402


def _short(value: Any) -> str:
    return str(value).split(":")[-1] if isinstance(value, str) and value.startswith("arn:") else str(value)


def describe(r: Declared) -> str | None:
    """One line of key properties, or None for plumbing that the tree only counts."""
    i = r.inputs
    t = r.type
    if t == "aws:rds/instance:Instance":
        role = (
            f"replica of {i['replicateSourceDb']}"
            if i.get("replicateSourceDb")
            else f"postgres {i.get('engineVersion')}"
        )
        return (
            f"{role}, {i.get('instanceClass')}, multiAz={i.get('multiAz')}, backups={int(i.get('backupRetentionPeriod', 0))}d, "
            f"encrypted={i.get('storageEncrypted')}, deletionProtection={i.get('deletionProtection')}"
        )
    if t == "aws:elasticache/replicationGroup:ReplicationGroup":
        return (
            f"redis {i.get('engineVersion')}, {int(i.get('numCacheClusters', 0))}x {i.get('nodeType')}, "
            f"autoFailover={i.get('automaticFailoverEnabled')}, multiAz={i.get('multiAzEnabled')}, "
            f"tls={i.get('transitEncryptionEnabled')}, atRest={i.get('atRestEncryptionEnabled')}"
        )
    if t == "aws:eks/cluster:Cluster":
        return f"EKS {i.get('version')}"
    if t == "aws:eks/nodeGroup:NodeGroup":
        s = i.get("scalingConfig", {})
        return f"min/desired/max {int(s.get('minSize', 0))}/{int(s.get('desiredSize', 0))}/{int(s.get('maxSize', 0))} {i.get('instanceTypes')}"
    if t == "aws:lb/loadBalancer:LoadBalancer":
        return "application load balancer"
    if t == "aws:lb/targetGroup:TargetGroup":
        return f"health {i.get('healthCheck', {}).get('path')} on :{int(i.get('port', 0))}"
    if t == "aws:lb/listener:Listener":
        return f"{i.get('protocol')} :{int(i.get('port', 0))}"
    if t == "aws:wafv2/webAcl:WebAcl":
        return "rules: " + ", ".join(str(rule["name"]) for rule in i.get("rules", []))
    if t == "aws:wafv2/ipSet:IpSet":
        return f"{len(i.get('addresses') or [])} blocked address(es)"
    if t == "aws:route53/zone:Zone":
        return "hosted zone"
    if t == "aws:route53/healthCheck:HealthCheck":
        return f"{i.get('type')} {i.get('resourcePath')} every {int(i.get('requestInterval', 0))}s"
    if t == "aws:route53/record:Record":
        policy = (i.get("failoverRoutingPolicies") or [{}])[0].get("type")
        if policy:
            return f"{policy} failover alias, health check {i.get('healthCheckId')}"
        return f"{i.get('type')} ttl={int(i.get('ttl', 0))}"
    if t in ("aws:secretsmanager/secret:Secret", "aws:s3/bucket:Bucket", "aws:kms/key:Key"):
        return "protected" if r.protect else ""
    if t in ("aws:dynamodb/table:Table", "aws:dynamodb/tableReplica:TableReplica"):
        return "global lock table" + (" (replica)" if "Replica" in t else "")
    if t == "kubernetes:apps/v1:Deployment":
        return f"replicas={int(i['spec']['replicas'])}"
    if t == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler":
        return f"HPA {int(i['spec']['minReplicas'])}..{int(i['spec']['maxReplicas'])}"
    if t == "kubernetes:core/v1:Service":
        return f"{i['spec']['type']} :{int(i['spec']['ports'][0]['nodePort'])}"
    if t == "kubernetes:core/v1:ConfigMap":
        return f"{i['metadata']['name']} ({len(i.get('data') or {})} flags)"
    if t == "kubernetes:core/v1:Secret":
        return f"{i['metadata']['name']} (value is a Pulumi secret)"
    if t == "kubernetes:core/v1:Namespace":
        return str(i["metadata"]["name"])
    return None


def render(run: MockRun, console: Console) -> int:
    """Print one stack's tree; return the number of policy violations."""
    children: dict[str, list[Declared]] = {}
    for r in run.resources:
        children.setdefault(r.parent, []).append(r)
    roots = [r for r in run.resources if r.type == "dr:infra:Estate"]
    tree = Tree(f"[bold]stack {run.stack}[/] — {run.role} in {run.region} ({len(run.resources)} resources)")
    bad = 0
    for root in roots:
        estate = tree.add(f"[cyan]{root.type}[/] {root.name}")
        for comp in sorted(children.get(root.urn, []), key=lambda c: c.name):
            node = estate.add(f"[cyan]{comp.type.split(':')[-1]}[/] {comp.name}")
            plumbing: dict[str, int] = {}
            for r in sorted(children.get(comp.urn, []), key=lambda c: (c.type, c.name)):
                found = violations(r.type, r.inputs, r.region or run.region)
                bad += len(found)
                line = describe(r)
                if line is None and not found:
                    kind = r.type.split(":")[-1]
                    plumbing[kind] = plumbing.get(kind, 0) + 1
                    continue
                name = r.physical or r.name
                text = f"{r.type.split(':')[-1]} [green]{name}[/]" + (f": {line}" if line else "")
                leaf = node.add(text)
                for rule, msg in found:
                    leaf.add(f"[red]POLICY {rule}[/]: {msg}")
            if plumbing:
                node.add("[dim]+ " + ", ".join(f"{n} {k}" for k, n in sorted(plumbing.items())) + "[/]")
    console.print(tree)
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack-dir", default=str(ROOT / "stacks"))
    parser.add_argument(
        "--stack",
        action="append",
        help="stack(s) to preview (default: the one primary stack of --stack-dir + its peer)",
    )
    parser.add_argument("--json", action="store_true", help="print the declared resources as JSON instead")
    ns = parser.parse_args(argv)
    console = Console()
    try:
        stacks = ns.stack
        if not stacks:
            first = read_stack(ns.stack_dir, default_stack(ns.stack_dir))
            stacks = [first.stack, first.peer_stack]
        runs = [run_isolated(ns.stack_dir, s) for s in stacks]
    except DrError as exc:
        console.print(f"[red]invalid configuration:[/] {exc.format_message()}")
        return 2
    except Exception as exc:  # the program itself failed under mocks
        console.print(f"[red]the Pulumi program failed:[/] {type(exc).__name__}: {exc}")
        return 1
    if ns.json:
        print(json.dumps({r.stack: r.to_json() for r in runs}, indent=2))
        return 0
    bad = sum(render(run, console) for run in runs)
    if bad:
        console.print(f"[red]{bad} DR policy violation(s)[/]")
        return 1
    console.print(f"[green]DR policy pack: all {len(runs)} stacks compliant[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
