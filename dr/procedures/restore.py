"""Restores: RDS point-in-time, RDS from snapshot, Redis from snapshot — plus restore testing.

Pre-flight (read-only) refuses what real AWS would refuse, because moto accepts anything:

* the target name must be a valid identifier and must not exist (exit 2);
* a PITR time must lie inside the source's restorable window: the ``RestoreWindow`` of its
  automated backups (``DescribeDBInstanceAutomatedBackups``; it starts at the first backup, e.g.
  after a promotion), else ``max(instance creation, now - retention)`` .. ``LatestRestorableTime``
  (retention 0 means no PITR at all) — outside it, exit 2 naming source, region, window and fix;
* ``--from replicated-backups`` restores in the DR region from the primary's automated backups
  replicated there (``SourceDBInstanceAutomatedBackupsArn``), validated against *their*
  RestoreWindow, with the DR site's subnet group, security groups and parameter group (the
  source's do not exist in that region) — it works with the primary region gone;
* the snapshot must exist in the region and be ``available`` (exit 2).

The restored instance inherits class, subnet group, security groups, parameter group and Multi-AZ
from the source (or, for a snapshot whose instance is gone / in another region, from the site's
database in that region). ``verify`` runs SQL checks through psycopg with the master credentials
from Secrets Manager (never printed); ``cleanup`` deletes the restored instance afterwards.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dr.aws.elasticache import CacheSnapshot, ElastiCache, ReplicationGroup
from dr.aws.rds import DbInstance, DbSnapshot, Rds, ReplicatedBackups
from dr.errors import BadInput, NotFound
from dr.procedures import pg_session  # default_connect looked up at call time (tests patch it)
from dr.procedures.pg_session import (
    Check,
    Connector,
    master_credentials,
    run_checks,
)
from dr.procedures.support import (
    TAG_CREATED_BY,
    TAG_RESTORED_FROM,
    check_cache_identifier,
    check_rds_identifier,
    iso,
    utcnow,
)
from dr.runbook.plan import Plan, Step
from dr.steps import (
    CLEANUP_RESTORED_DB,
    CLEANUP_RESTORED_REDIS,
    RESTORE_DB,
    RESTORE_REDIS,
    RESTORE_VERDICT,
    VERIFY_RESTORED_DB,
)

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

Kind = Literal["rds", "redis"]
PitrSource = Literal["instance", "replicated-backups"]

# The IAM actions the pre-flight (:func:`prepare_pitr`, :func:`prepare_snapshot`) reads beyond
# the plan's steps (which their kinds declare, :mod:`dr.steps.restore_steps`). Every restore takes
# --region: both regions.
PREFLIGHT_READS: tuple[tuple[str, str], ...] = (
    ("rds:DescribeDBInstances", "both"),  # the source (template); the target's name is free
    ("rds:DescribeDBSnapshots", "both"),  # the snapshot restored from
    # the RestoreWindow; --from replicated-backups: the backups replicated into the region
    ("rds:DescribeDBInstanceAutomatedBackups", "both"),
    ("elasticache:DescribeReplicationGroups", "both"),  # the template group; the target's name is free
    ("elasticache:DescribeCacheClusters", "both"),  # (reading a group reads its first member)
    ("elasticache:DescribeSnapshots", "both"),  # the Redis snapshot restored from
)


# ---------------------------------------------------------------------------------------------
# the restorable window
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreWindow:
    source: str
    region: str
    earliest: dt.datetime
    latest: dt.datetime

    def contains(self, when: dt.datetime) -> bool:
        return self.earliest <= when <= self.latest

    def to_dict(self) -> dict[str, Any]:
        return {"earliest": iso(self.earliest), "latest": iso(self.latest)}


def restorable_window(
    inst: DbInstance, now: dt.datetime, backups: ReplicatedBackups | None = None
) -> RestoreWindow:
    """The PITR window of ``inst``: the RestoreWindow of its automated backups when known
    (``backups``), else estimated from retention and creation; BadInput when it has none."""
    if inst.backup_retention_days <= 0:
        raise BadInput(
            f"DB instance {inst.identifier} in {inst.region} has automated backups disabled "
            "(BackupRetentionPeriod 0): point-in-time restore is impossible",
            resource=inst.identifier,
            region=inst.region,
            hint="restore from a snapshot instead (`dr restore snapshot`), and set backupRetentionDays > 0",
        )
    if inst.latest_restorable_time is None:
        raise BadInput(
            f"DB instance {inst.identifier} in {inst.region} has no LatestRestorableTime yet "
            f"(status {inst.status}): its first backup has not completed",
            resource=inst.identifier,
            region=inst.region,
            hint="wait for the first automated backup, or restore from a snapshot",
        )
    if backups is not None and backups.earliest is not None and backups.latest is not None:
        return RestoreWindow(inst.identifier, inst.region, backups.earliest, backups.latest)
    earliest = now - dt.timedelta(days=inst.backup_retention_days)
    if inst.created is not None and inst.created > earliest:
        earliest = inst.created
    return RestoreWindow(inst.identifier, inst.region, earliest, inst.latest_restorable_time)


def own_backups(rds: Rds, inst: DbInstance) -> ReplicatedBackups | None:
    """The instance's automated backups in its own region (None when not listed or not allowed:
    the window is then estimated from retention)."""
    from dr.errors import DrError

    try:
        entries = rds.automated_backups(instance=inst.identifier)
    except DrError:
        return None
    return next((b for b in entries if not b.replicated and b.source_arn == inst.arn), None)


def replicated_window(backups: ReplicatedBackups) -> RestoreWindow:
    """The RestoreWindow of replicated automated backups; BadInput while they have none."""
    label = f"{backups.instance} (automated backups replicated from {backups.source_region})"
    if backups.earliest is None or backups.latest is None:
        raise BadInput(
            f"the automated backups of {backups.instance} replicated to {backups.region} have no "
            f"restorable time yet (status {backups.status or 'unknown'})",
            resource=backups.arn or backups.instance,
            region=backups.region,
            hint="the first replicated backup has not completed: wait, or restore from a snapshot "
            "copied to this region (`dr restore snapshot`)",
        )
    return RestoreWindow(label, backups.region, backups.earliest, backups.latest)


def find_replicated_backups(rds: Rds, source: str, source_region: str) -> ReplicatedBackups:
    """The automated backups of ``source`` (an instance of ``source_region``) replicated into the
    region of ``rds``; BadInput (exit 2) naming what to deploy when there are none."""
    found = [b for b in rds.replicated_backups(source_region) if b.instance == source]
    if not found:
        raise BadInput(
            f"no automated backups of DB instance {source} ({source_region}) are replicated to "
            f"{rds.region}: point-in-time restore there is impossible",
            resource=source,
            region=rds.region,
            hint="deploy the DR stack's backup replication (`pulumi up --stack <dr>`: "
            "aws.rds.InstanceAutomatedBackupsReplication), or restore from a snapshot copied there",
        )
    usable = [b for b in found if b.status in ("replicating", "active", "retained")]
    return max(usable or found, key=lambda b: b.latest or dt.datetime.min.replace(tzinfo=dt.UTC))


def site_settings(estate: Estate, view: SiteView, here: DbInstance | None) -> dict[str, Any]:
    """Network and engine settings a restore in ``view``'s region takes from *that* site: its
    database's subnet group, security groups and parameter group (read from the site's instance
    when it exists), class and Multi-AZ from the stack file. Never deletion-protected: it is a
    restore the toolkit may clean up."""
    settings: dict[str, Any] = {
        "DBInstanceClass": view.database.instance_class,
        "MultiAZ": view.database.multi_az,
        "DBSubnetGroupName": (here.subnet_group if here else None) or estate.db_subnet_group(view),
        "DeletionProtection": False,
        "PubliclyAccessible": here.publicly_accessible if here else False,
    }
    if here is not None and here.security_groups:
        settings["VpcSecurityGroupIds"] = list(here.security_groups)
    if here is not None and here.parameter_group:
        settings["DBParameterGroupName"] = here.parameter_group
    return settings


def check_restore_time(window: RestoreWindow, when: dt.datetime) -> None:
    if window.contains(when):
        return
    side = "before the earliest" if when < window.earliest else "after the latest"
    bound = window.earliest if when < window.earliest else window.latest
    # Within the same second the two would print alike: then show the milliseconds.
    shown = (
        iso(when) if iso(when) != iso(bound) else when.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    )
    raise BadInput(
        f"restore time {shown} is {side} restorable time of DB instance {window.source} in "
        f"{window.region} (window {iso(window.earliest)} … {iso(window.latest)})",
        resource=window.source,
        region=window.region,
        hint=f"pick a --time between {iso(window.earliest)} and {iso(window.latest)}, or use "
        "--minutes-ago with a smaller number; nothing was changed",
    )


# ---------------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------------


@dataclass
class RestoreRequest:
    """A validated restore (pre-flight result)."""

    kind: Kind
    mode: Literal["pitr", "snapshot"]
    region: str
    target: str
    source: str
    restore_time: dt.datetime | None = None
    window: RestoreWindow | None = None
    template: DbInstance | None = None
    snapshot: DbSnapshot | CacheSnapshot | None = None
    cache_template: ReplicationGroup | None = None
    checks: list[Check] = field(default_factory=list)
    verify: bool = False
    cleanup: bool = False
    db_name: str | None = None
    secret_id: str | None = None
    # --from replicated-backups: the backups restored from and the DR site's settings.
    backups: ReplicatedBackups | None = None
    settings: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mode": self.mode,
            "from": "replicated-backups" if self.backups is not None else "instance",
            "backups_arn": self.backups.arn if self.backups is not None else None,
            "region": self.region,
            "target": self.target,
            "source": self.source,
            "restore_time": iso(self.restore_time) if self.restore_time else None,
            "window": self.window.to_dict() if self.window else None,
            "inherits_from": self.template.identifier
            if self.template
            else (self.cache_template.identifier if self.cache_template else None),
            "settings": {k: v for k, v in (self.settings or {}).items() if k != "Tags"} or None,
            "verify": self.verify,
            "cleanup": self.cleanup,
            "checks": [c.name for c in self.checks],
        }


def _target_free(clients: ClientProvider, kind: Kind, region: str, target: str, *, resuming: bool) -> None:
    if kind == "rds":
        check_rds_identifier(target, region=region)
        exists = Rds(clients, region).find_instance(target) is not None
        what = "DB instance"
    else:
        check_cache_identifier(target, region=region)
        exists = ElastiCache(clients, region).find_replication_group(target) is not None
        what = "Redis replication group"
    if exists and not resuming:
        raise BadInput(
            f"{what} {target} already exists in {region}",
            resource=target,
            region=region,
            hint="pick another --target name (restores never overwrite), or delete the old one first",
        )


def prepare_pitr(
    clients: ClientProvider,
    estate: Estate,
    view: SiteView,
    *,
    source: str | None,
    target: str,
    when: dt.datetime | None,
    minutes_ago: float | None,
    checks: list[Check],
    verify: bool,
    cleanup: bool,
    resuming: bool = False,
    from_: PitrSource = "instance",
) -> RestoreRequest:
    region = view.region
    now = utcnow()
    if (when is None) == (minutes_ago is None):
        raise BadInput("give exactly one of --time ISO or --minutes-ago N", resource="--time", region=region)
    restore_time = when if when is not None else now - dt.timedelta(minutes=float(minutes_ago or 0))
    rds = Rds(clients, region)
    template: DbInstance | None = None
    backups: ReplicatedBackups | None = None
    settings: dict[str, Any] | None = None
    if from_ == "replicated-backups":
        # The other site's backups replicated here; only this region is read (that one may be gone).
        other = estate.other(view)
        src = source or other.database.identifier
        backups = find_replicated_backups(rds, src, other.region)
        window = replicated_window(backups)
        settings = site_settings(estate, view, rds.find_instance(view.database.identifier))
    else:
        src = source or view.database.identifier
        template = rds.describe_instance(src)
        window = restorable_window(template, now, own_backups(rds, template))
    if not resuming:
        check_restore_time(window, restore_time)
    _target_free(clients, "rds", region, target, resuming=resuming)
    return RestoreRequest(
        "rds",
        "pitr",
        region,
        target,
        src,
        restore_time=restore_time,
        window=window,
        template=template,
        checks=checks,
        verify=verify,
        cleanup=cleanup,
        db_name=estate.app.database.db_name,
        secret_id=estate.app.db_secret.secrets_manager_id,
        backups=backups,
        settings=settings,
    )


def prepare_snapshot(
    clients: ClientProvider,
    estate: Estate,
    view: SiteView,
    *,
    snapshot: str,
    target: str,
    kind: Kind,
    checks: list[Check],
    verify: bool,
    cleanup: bool,
    resuming: bool = False,
) -> RestoreRequest:
    region = view.region
    if kind == "redis":
        if verify or checks:
            raise BadInput("--verify/--check-* apply to RDS restores only", resource=snapshot, region=region)
        cache = ElastiCache(clients, region)
        csnap = cache.find_snapshot(snapshot)
        if csnap is None:
            raise NotFound(
                f"Redis snapshot {snapshot} not found in {region}",
                resource=snapshot,
                region=region,
                hint="list them with `dr snapshot list --kind redis`; pass --region for the other region",
            )
        if csnap.status != "available":
            raise BadInput(
                f"Redis snapshot {snapshot} in {region} is {csnap.status}", resource=snapshot, region=region
            )
        like = cache.find_replication_group(csnap.source) or cache.find_replication_group(
            view.cache.replication_group_id
        )
        _target_free(clients, "redis", region, target, resuming=resuming)
        return RestoreRequest(
            "redis",
            "snapshot",
            region,
            target,
            csnap.source,
            snapshot=csnap,
            cache_template=like,
            cleanup=cleanup,
        )
    rds = Rds(clients, region)
    snap = rds.find_snapshot(snapshot)
    if snap is None:
        raise NotFound(
            f"DB snapshot {snapshot} not found in {region}",
            resource=snapshot,
            region=region,
            hint="list them with `dr snapshot list`; pass --region for the other region",
        )
    if snap.status != "available":
        raise BadInput(
            f"DB snapshot {snapshot} in {region} is {snap.status}, not available",
            resource=snapshot,
            region=region,
            hint="wait until it is available",
        )
    template = rds.find_instance(snap.instance) or rds.find_instance(view.database.identifier)
    _target_free(clients, "rds", region, target, resuming=resuming)
    return RestoreRequest(
        "rds",
        "snapshot",
        region,
        target,
        snap.instance,
        snapshot=snap,
        template=template,
        checks=checks,
        verify=verify,
        cleanup=cleanup,
        db_name=estate.app.database.db_name,
        secret_id=estate.app.db_secret.secrets_manager_id,
    )


def restore_plan(req: RestoreRequest, *, timeout: float = 7200.0, connect: Connector | None = None) -> Plan:
    """Plan: restore → (verify) → (cleanup) → (verdict)."""
    region, target = req.region, req.target
    steps: list[Step] = []
    tags = {TAG_CREATED_BY: "dr-toolkit", TAG_RESTORED_FROM: req.source}

    if req.kind == "rds":
        steps.append(
            RESTORE_DB.build(
                region,
                target,
                source=req.source,
                restore_time=req.restore_time,
                template=req.template,
                snapshot=req.snapshot if isinstance(req.snapshot, DbSnapshot) else None,
                backups=req.backups,
                settings=req.settings,
                tags=tags,
                timeout=timeout,
            )
        )
        if req.verify:
            steps.append(_verify_step(req, connect or pg_session.default_connect))
        if req.cleanup:
            steps.append(_after(CLEANUP_RESTORED_DB.build(region, target), steps[-1].id))
        if req.verify:
            steps.append(_after(RESTORE_VERDICT.build(region, target), steps[-1].id))
    else:
        assert isinstance(req.snapshot, CacheSnapshot)
        steps.append(
            RESTORE_REDIS.build(
                region, target, snapshot=req.snapshot, like=req.cache_template, timeout=timeout
            )
        )
        if req.cleanup:
            steps.append(_after(CLEANUP_RESTORED_REDIS.build(region, target, timeout=timeout), "restore"))
    name = f"restore-{req.mode}" if req.kind == "rds" else "restore-redis"
    return Plan(name, steps, f"Restore {target} in {region} from {req.source}")


def _after(step: Step, depends: str) -> Step:
    step.depends_on = (depends,)
    return step


def _verify_step(req: RestoreRequest, connect: Connector) -> Step:
    region, secret_id = req.region, req.secret_id
    checks = req.checks or [Check(name="SELECT 1", sql="SELECT 1")]

    def credentials(clients: ClientProvider) -> tuple[str, str]:
        assert secret_id is not None
        return master_credentials(clients, region, secret_id)

    step = VERIFY_RESTORED_DB.build(
        region,
        req.target,
        secret_id=secret_id,
        db_name=req.db_name,
        checks=len(checks),
        credentials=credentials,
        connect=connect,
        run=lambda conn: run_checks(conn, checks),
    )
    return _after(step, "restore")


def iam_plans(estate: Estate, view: SiteView) -> list[Plan]:
    """Every shape of restore plan in ``view``'s region, built from the topology alone (no API
    call; placeholders for what the pre-flight reads): a PITR with --verify --cleanup, a snapshot
    restore and a Redis restore, each with --cleanup. ``dr iam-policy`` derives from their steps."""
    region, db, group = view.region, view.database.identifier, view.cache.replication_group_id
    db_name, secret_id = estate.app.database.db_name, estate.app.db_secret.secrets_manager_id
    snap = DbSnapshot("SNAPSHOT", region, "", db, "available", "manual", None, None, True, None)
    csnap = CacheSnapshot("SNAPSHOT", region, group, "available", "manual", None, None, None)
    requests = [
        RestoreRequest("rds", "pitr", region, "restored", db, verify=True, cleanup=True, secret_id=secret_id),
        RestoreRequest(
            "rds", "snapshot", region, "restored", db, snapshot=snap, cleanup=True, db_name=db_name
        ),
        RestoreRequest("redis", "snapshot", region, "restored", group, snapshot=csnap, cleanup=True),
    ]
    return [restore_plan(r) for r in requests]
