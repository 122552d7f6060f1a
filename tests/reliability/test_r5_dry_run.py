"""R5: ``--dry-run`` of every mutating command sends ZERO mutating calls (and exits 0).

The commands are enumerated from ``dr.cli.main.COMMANDS`` and their click subcommands: every leaf
command either has ``--dry-run`` (then it is run here, a real ``dr`` process with the call log) or is
listed in READ_ONLY with the reason it cannot change infrastructure. A new command that is neither
fails ``test_every_mutating_command_has_dry_run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from tests.reliability.harness import Estate, manual_snapshot, read_log, sent_mutations

pytestmark = pytest.mark.slow

# Leaf commands without --dry-run, and why that is right.
READ_ONLY = {
    "dns status": "reads Route53",
    "doctor": "read-only preflight (read-only AWS client; Kubernetes is only asked can-i)",
    "drill history": "reads local evidence directories",
    "drill list": "lists scenario files",
    "drill report": "re-renders a local journal",
    "fleet plan": "reads the fleet file only (offline)",
    "topology init": "writes new local stack files only (refuses to overwrite without --force)",
    "topology schema": "prints the stack config's JSON Schema (offline)",
    "iam-policy": "prints a policy document",
    "incident list": "reads local incident files",
    "incident start": "local incident file + optional webhook; no infrastructure",
    "incident update": "local incident file + optional webhook; no infrastructure",
    "incident resolve": "local incident file + optional webhook; no infrastructure",
    "ops cert check": "reads ACM",
    "ops flag list": "reads ConfigMaps",
    "ops history": "reads ReplicaSets",
    "ops triage": "reads everything, changes nothing",
    "ops waf list": "reads WAF IP sets",
    "readiness": "read-only checks",
    "sandbox down": "the local sandbox, not infrastructure",
    "sandbox status": "the local sandbox, not infrastructure",
    "sandbox up": "the local sandbox, not infrastructure",
    "snapshot list": "reads RDS/ElastiCache",
    "status": "read-only probes",
    "topology show": "reads the stack files",
}

# Arguments that make each dry run meaningful on the test estate (a valid request).
DRY_ARGS: dict[str, list[str]] = {
    "dns failback": [],
    "dns failover": [],
    "drill run": ["region-loss", "--target", "sandbox"],
    "failback": [],
    "failover": ["--mode", "unplanned"],
    "fleet failover": ["--file", "{fleet}"],
    "ops circuit-breaker": ["on"],
    "ops flag disable": ["maintenance-mode"],
    "ops flag enable": ["maintenance-mode"],
    "ops flag set": ["db-pool-max", "40"],
    "ops hpa": ["api", "--min", "2", "--max", "8"],
    "ops maintenance": ["on"],
    "ops quarantine": ["{pod}"],
    "ops resume-writes": [],
    "ops rollback": ["api"],
    "ops rotate-db-secret": [],
    "ops scale": ["api", "--replicas", "5", "--adjust-hpa"],
    "ops stop-writes": [],
    "ops waf block": ["203.0.113.0/24"],
    "ops waf unblock": ["192.0.2.1/32"],
    "promote": [],
    "reconcile": ["--primary", "dr"],
    "reprotect": [],
    "restore pitr": ["--time", "{pitr_time}", "--target", "r5-pitr"],
    "restore snapshot": ["--snapshot", "{snapshot}", "--target", "r5-snap"],
    "snapshot copy": ["--snapshot", "{snapshot}"],
    "snapshot create": [],
    "snapshot prune": ["--keep-last", "1"],
}


# The shared estate never failed over: a failback is refused by its gate (exit 3), read-only.
DRY_EXIT: dict[str, int] = {"failback": 3}


def leaf_commands() -> dict[str, click.Command]:
    from dr.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    found: dict[str, click.Command] = {}

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = cmd

    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        walk(command, [name])
    return found


def has_dry_run(cmd: click.Command) -> bool:
    return any("--dry-run" in p.opts for p in cmd.params)


DRY = sorted(name for name, cmd in leaf_commands().items() if has_dry_run(cmd))


def test_every_mutating_command_has_dry_run() -> None:
    leaves = leaf_commands()
    missing = sorted(n for n, c in leaves.items() if not has_dry_run(c) and n not in READ_ONLY)
    assert missing == [], f"commands without --dry-run that are not known read-only: {missing}"
    assert sorted(DRY_ARGS) == DRY, "every --dry-run command needs meaningful arguments here"
    stale = sorted(set(READ_ONLY) - set(leaves))
    assert stale == [], stale


def _names(e: Estate) -> dict[str, str]:
    rds = e.clients.client("rds", e.estate.primary.region)
    db = rds.describe_db_instances(DBInstanceIdentifier=e.estate.primary.database.identifier)["DBInstances"][
        0
    ]
    api = e.apis[e.estate.primary.cluster.name]
    pods = [name for (_ns, name) in list(api._store["pods"]) if "api" in name]
    return {
        "snapshot": manual_snapshot(e),
        "pod": pods[0] if pods else "none",
        "pitr_time": db["LatestRestorableTime"].strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _fleet_file(e: Estate, tmp_path: Path) -> str:
    """A fleet of one: the estate's DR replica (for `dr fleet failover --dry-run`)."""
    dr = e.estate.secondary
    path = tmp_path / "fleet.yaml"
    path.write_text(f"databases:\n  - {{identifier: {dr.database.identifier}, region: {dr.region}}}\n")
    return str(path)


def _new_revision(e: Estate) -> None:
    """Give the api deployment a second revision (so `ops rollback api` has one to go back to)."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(e.kubeconfig, context=e.estate.primary.cluster.name)
    apps = client.AppsV1Api(api_client)
    deps: list[Any] = apps.list_deployment_for_all_namespaces().items
    dep = next(d for d in deps if str(d.metadata.name).endswith("-api"))
    apps.patch_namespaced_deployment(
        str(dep.metadata.name),
        str(dep.metadata.namespace),
        {"spec": {"template": {"metadata": {"annotations": {"r5": "rev2"}}}}},
    )
    api_client.close()


@pytest.mark.parametrize("command", DRY)
def test_dry_run_sends_no_mutating_call(shared_estate: Estate, command: str, tmp_path: Path) -> None:
    e = shared_estate
    if command == "ops rollback":
        _new_revision(e)
    names = _names(e)
    names["fleet"] = _fleet_file(e, tmp_path)
    args = [*command.split(), *[a.format(**names) for a in DRY_ARGS[command]], "--dry-run"]
    if command.startswith("drill"):
        args += ["--out", str(tmp_path / "evidence")]
    log = e.new_log(command.replace(" ", "-"))
    res = e.dr(args, log=log)
    attempted = [c for c in read_log(log) if c["mutating"]]
    assert sent_mutations(log) == [], [(c.get("service"), c["operation"]) for c in sent_mutations(log)]
    # Nothing was even attempted (a refused call would mean a code path ignoring --dry-run).
    assert attempted == [], [(c.get("service"), c["operation"]) for c in attempted]
    assert res.returncode == DRY_EXIT.get(command, 0), (res.stdout[-1500:], res.stderr[-1500:])
