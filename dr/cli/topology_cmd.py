"""`dr topology show`: the two-region estate, as the stack files declare it."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from dr.cli.context import AppContext, pass_app
from dr.cli.render import emit, simple_table


@click.group()
def topology() -> None:
    """The estate model: what the stack files declare, for both regions."""


def estate_summary(app_ctx: AppContext) -> dict[str, Any]:
    estate = app_ctx.estate
    sites = {}
    for view in (estate.primary, estate.secondary):
        s = view.site
        sites["primary" if view.role == "primary" else "secondary"] = {
            "stack": view.stack,
            "region": view.region,
            "site": s.name,
            "eks_cluster": s.cluster.name,
            "eks_version": s.cluster.version,
            "nodegroup": {
                "name": s.cluster.nodegroup.name,
                "min": s.cluster.nodegroup.min_size,
                "max": s.cluster.nodegroup.max_size,
                "desired": s.cluster.nodegroup.desired_size,
            },
            "rds": {
                "identifier": s.database.identifier,
                "role": "writer" if view.role == "primary" else "cross-region read replica",
                "instance_class": s.database.instance_class,
                "multi_az": s.database.multi_az,
                "backup_retention_days": s.database.backup_retention_days,
            },
            "redis": {"replication_group": s.cache.replication_group_id, "nodes": s.cache.num_cache_clusters},
            "alb": s.edge.alb_name,
            "target_group": s.edge.target_group_name,
            "waf": {"web_acl": s.edge.web_acl_name, "ip_set": s.edge.ip_set_name},
            "route53_failover": "PRIMARY" if view.role == "primary" else "SECONDARY",
            "health_check": estate.health_check_ref(view),
            "deployments": {d.name: estate.replica_count(view, d) for d in estate.app.deployments},
            "journal_bucket": estate.journal_bucket(view.region),
        }
    return {
        "app": estate.app.name,
        "namespace": estate.app.namespace,
        "zone": estate.app.domain,
        "record": estate.app.record,
        "ttl": estate.app.ttl,
        "health_path": estate.app.health_path,
        "objectives": estate.app.objectives.model_dump(),
        "lock_table": estate.lock_table,
        "config_map": estate.app.config_map,
        "db_secret": {"name": estate.app.db_secret.name, "key": estate.app.db_secret.key},
        "sites": sites,
    }


def _render(data: dict[str, Any], out: Console) -> None:
    p, s = data["sites"]["primary"], data["sites"]["secondary"]

    def fmt(v: Any) -> str:
        if isinstance(v, dict):
            return "\n".join(f"{k}={x}" for k, x in v.items())
        return str(v)

    keys = [k for k in p if k not in ("deployments",)]
    rows = [[k, fmt(p[k]), fmt(s[k])] for k in keys]
    rows.append(["deployments (replicas)", fmt(p["deployments"]), fmt(s["deployments"])])
    out.print(
        simple_table(
            f"Estate {data['app']} — {data['record']} (TTL {data['ttl']}s, health {data['health_path']})",
            ["", "primary", "secondary (warm standby)"],
            rows,
        )
    )
    obj = data["objectives"]
    out.print(
        f"namespace {data['namespace']} · lock table {data['lock_table']} · "
        f"objectives RTO {obj['rto_seconds']:g}s, RPO {obj['rpo_seconds']:g}s"
    )


@topology.command("show")
@pass_app
def show(app_ctx: AppContext) -> None:
    """Render the estate (both regions) as a table, or JSON with -o json."""
    emit(app_ctx.output, estate_summary(app_ctx), _render)
