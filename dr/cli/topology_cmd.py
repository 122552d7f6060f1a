"""`dr topology show`: the two-region estate, as the stack files declare it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dr.cli.app import AppContext, pass_app
from dr.cli.output import emit, simple_table


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


@topology.command("init")
@click.option("--app", "app_name", required=True, help="App name (lowercase letters, digits, '-').")
@click.option("--primary-region", required=True, help="Region of the primary stack, e.g. eu-west-1.")
@click.option("--dr-region", required=True, help="Region of the warm-standby (DR) stack, e.g. eu-central-1.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the pair (default: --stack-dir).",
)
@click.option("--engine-version", default="16", show_default=True, help="PostgreSQL version (15 or newer).")
@click.option("--primary-stack", default=None, help="Primary stack name (default: <app>-<primary-region>).")
@click.option("--dr-stack", default=None, help="DR stack name (default: <app>-<dr-region>).")
@click.option("--domain", default=None, help="Route53 hosted zone (default: <app>.example.com).")
@click.option("--health-path", default="/health", show_default=True, help="Path the health checks probe.")
@click.option("--force", is_flag=True, help="Overwrite existing stack files of the same names.")
@pass_app
def init(
    app_ctx: AppContext,
    app_name: str,
    primary_region: str,
    dr_region: str,
    directory: Path | None,
    engine_version: str,
    primary_stack: str | None,
    dr_stack: str | None,
    domain: str | None,
    health_path: str,
    force: bool,
) -> None:
    """Write a commented pair of stack files (primary + DR) for a new estate; they validate as
    written (docs/estate.md explains every key). Exit 2 on an invalid name or region."""
    from dr.estate_template import render_pair, write_pair

    files = render_pair(
        app_name,
        primary_region,
        dr_region,
        engine_version=engine_version,
        primary_stack=primary_stack,
        dr_stack=dr_stack,
        domain=domain,
        health_path=health_path,
    )
    target = directory or app_ctx.stack_dir
    paths = write_pair(target, files, force=force)
    stacks = [p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in paths]
    data = {
        "directory": str(target),
        "files": [str(p) for p in paths],
        "primary_stack": stacks[0],
        "dr_stack": stacks[1],
        "next": [
            f"dr --stack-dir {target} --stack {stacks[0]} topology show",
            f"dr --stack-dir {target} --stack {stacks[0]} sandbox up",
        ],
    }

    def human(d: dict[str, Any], out: Console) -> None:
        out.print(f"wrote {', '.join(d['files'])}")
        out.print("next:\n  " + "\n  ".join(d["next"]))

    emit(app_ctx.output, data, human)


def stack_config_schema() -> dict[str, Any]:
    """JSON Schema of one stack file, generated from the pydantic models of dr.topology."""
    from dr.topology import NS, App, Site, StackConfig

    role = StackConfig.model_fields["role"].annotation
    app_schema = App.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    site_schema = Site.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = {**app_schema.pop("$defs", {}), **site_schema.pop("$defs", {})}
    defs["App"], defs["Site"] = app_schema, site_schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dr-toolkit stack file (Pulumi.<stack>.yaml)",
        "description": "One half of a two-region estate; docs/estate.md explains every key.",
        "type": "object",
        "required": ["config"],
        "properties": {
            "config": {
                "type": "object",
                "required": ["aws:region", NS + "role", NS + "peerStack", NS + "app", NS + "site"],
                "properties": {
                    "aws:region": {"type": "string", "enum": sorted(_regions())},
                    NS + "role": {"enum": list(getattr(role, "__args__", ("primary", "standby")))},
                    NS + "peerStack": {"type": "string", "description": "the other stack of the pair"},
                    NS + "primaryStackRef": {
                        "type": "string",
                        "description": "standby only: org/project/stack of the primary",
                    },
                    NS + "app": {"$ref": "#/$defs/App"},
                    NS + "site": {"$ref": "#/$defs/Site"},
                },
                "additionalProperties": True,
            }
        },
        "$defs": defs,
    }


def _regions() -> frozenset[str]:
    from dr.topology import AWS_REGIONS

    return AWS_REGIONS


@topology.command("schema")
def schema() -> None:
    """Print the JSON Schema of a stack file (for editors: yaml-language-server, VS Code)."""
    import json

    click.echo(json.dumps(stack_config_schema(), indent=2, sort_keys=True))
