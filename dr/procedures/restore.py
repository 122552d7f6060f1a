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
from dr.errors import BadInput, NotFound, VerificationFailed
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
    Settled,
    check_cache_identifier,
    check_rds_identifier,
    clients_of,
    iso,
    utcnow,
)
from dr.runbook.plan import Operation, Plan, Step, StepContext

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

Kind = Literal["rds", "redis"]
PitrSource = Literal["instance", "replicated-backups"]
_FAILED = {"failed", "incompatible-restore", "incompatible-parameters", "create-failed", "restore-failed"}


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
    """Plan: restore → (verify) → (cleanup)."""
    region, target = req.region, req.target
    settled = Settled()
    steps: list[Step] = []
    tags = {TAG_CREATED_BY: "dr-toolkit", TAG_RESTORED_FROM: req.source}

    if req.kind == "rds":

        def exists(ctx: StepContext) -> DbInstance | None:
            return Rds(clients_of(ctx), region).find_instance(target)

        def check(ctx: StepContext) -> bool:
            inst = exists(ctx)
            if inst is not None and inst.status == "available":
                ctx.set("endpoint", inst.endpoint)
                return True
            return False

        def action(ctx: StepContext) -> Any:
            if exists(ctx) is not None:
                return None  # an interrupted run already asked for it
            rds = Rds(clients_of(ctx), region)
            if req.backups is not None:
                done = rds.restore_from_automated_backups(
                    req.backups, target, restore_time=req.restore_time, settings=req.settings or {}, tags=tags
                )
            elif req.mode == "pitr":
                assert req.template is not None
                done = rds.restore_to_time(req.template, target, restore_time=req.restore_time, tags=tags)
            else:
                assert isinstance(req.snapshot, DbSnapshot)
                done = rds.restore_from_snapshot(req.snapshot, target, like=req.template, tags=tags)
            return done.to_dict()

        def wait(ctx: StepContext) -> bool:
            inst = exists(ctx)
            if inst is None:
                return False
            if inst.status in _FAILED:
                raise VerificationFailed(
                    f"restored DB instance {target} in {region} is {inst.status}",
                    resource=target,
                    region=region,
                )
            settled.observe(
                done=inst.status == "available", transitional=inst.status != "available", label=inst.status
            )
            if inst.status == "available" and inst.endpoint:
                ctx.set("endpoint", inst.endpoint)
                ctx.set("port", inst.port)
                return True
            return False

        if req.mode == "pitr":
            source_key = "SourceDBInstanceIdentifier"
            source_value = req.source
            if req.backups is not None:
                source_key, source_value = "SourceDBInstanceAutomatedBackupsArn", req.backups.arn
            params: dict[str, Any] = {
                source_key: source_value,
                "TargetDBInstanceIdentifier": target,
                "RestoreTime": iso(req.restore_time),
            }
            op = Operation("rds", "RestoreDBInstanceToPointInTime", region, params)
        else:
            assert req.snapshot is not None
            params = {"DBSnapshotIdentifier": req.snapshot.identifier, "DBInstanceIdentifier": target}
            op = Operation("rds", "RestoreDBInstanceFromDBSnapshot", region, params)
        if req.settings is not None:
            params.update(req.settings)
        elif req.template is not None:
            params.update(
                {
                    "DBInstanceClass": req.template.instance_class,
                    "MultiAZ": req.template.multi_az,
                    "DBSubnetGroupName": req.template.subnet_group,
                    "DBParameterGroupName": req.template.parameter_group,
                    "VpcSecurityGroupIds": list(req.template.security_groups),
                }
            )
        what = (
            f"PITR of {req.source}{' (replicated backups)' if req.backups else ''} at {iso(req.restore_time)}"
            if req.mode == "pitr"
            else f"snapshot {params['DBSnapshotIdentifier']}"
        )
        steps.append(
            Step(
                id="restore",
                title=f"Restore {target} from {what}",
                region=region,
                service="rds",
                changes=f"new DB instance {target} in {region}",
                operations=(op,),
                check=check,
                action=action,
                wait=wait,
                timeout=timeout,
                estimate=1200.0,
            )
        )
        if req.verify:
            steps.append(_verify_step(req, connect or pg_session.default_connect))
        if req.cleanup:
            steps.append(_cleanup_rds_step(req, depends=steps[-1].id))
        if req.verify:
            steps.append(_verdict_step(req, depends=steps[-1].id))
    else:
        assert isinstance(req.snapshot, CacheSnapshot)
        csnap = req.snapshot

        def cfind(ctx: StepContext) -> ReplicationGroup | None:
            return ElastiCache(clients_of(ctx), region).find_replication_group(target)

        def ccheck(ctx: StepContext) -> bool:
            group = cfind(ctx)
            return group is not None and group.status == "available"

        def caction(ctx: StepContext) -> Any:
            if cfind(ctx) is not None:
                return None
            ElastiCache(clients_of(ctx), region).restore_replication_group(
                csnap, target, like=req.cache_template
            )
            return {"replication_group": target}

        def cwait(ctx: StepContext) -> bool:
            group = cfind(ctx)
            if group is not None and group.status in {"create-failed"}:
                raise VerificationFailed(
                    f"Redis group {target} in {region} is {group.status}", resource=target, region=region
                )
            if group is not None and group.status == "available":
                ctx.set("endpoint", group.primary_endpoint)
                return True
            return False

        steps.append(
            Step(
                id="restore",
                title=f"Restore Redis {target} from snapshot {csnap.identifier}",
                region=region,
                service="elasticache",
                changes=f"new Redis replication group {target} in {region}",
                operations=(
                    Operation(
                        "elasticache",
                        "CreateReplicationGroup",
                        region,
                        {"ReplicationGroupId": target, "SnapshotName": csnap.identifier},
                    ),
                ),
                check=ccheck,
                action=caction,
                wait=cwait,
                timeout=timeout,
                estimate=900.0,
            )
        )
        if req.cleanup:

            def dcheck(ctx: StepContext) -> bool:
                return cfind(ctx) is None

            def daction(ctx: StepContext) -> Any:
                ElastiCache(clients_of(ctx), region).delete_replication_group(target)
                return None

            def dwait(ctx: StepContext) -> bool:
                group = cfind(ctx)
                return group is None or group.status == "deleted"

            steps.append(
                Step(
                    id="cleanup",
                    title=f"Delete restored Redis {target}",
                    region=region,
                    service="elasticache",
                    changes=f"deletes replication group {target} in {region}",
                    depends_on=("restore",),
                    operations=(
                        Operation(
                            "elasticache", "DeleteReplicationGroup", region, {"ReplicationGroupId": target}
                        ),
                    ),
                    check=dcheck,
                    action=daction,
                    wait=dwait,
                    timeout=timeout,
                    estimate=300.0,
                )
            )
    name = f"restore-{req.mode}" if req.kind == "rds" else "restore-redis"
    return Plan(name, steps, f"Restore {target} in {region} from {req.source}")


def _verify_step(req: RestoreRequest, connect: Connector) -> Step:
    region, target = req.region, req.target
    checks = req.checks or [Check(name="SELECT 1", sql="SELECT 1")]

    def action(ctx: StepContext) -> Any:
        clients = clients_of(ctx)
        inst = Rds(clients, region).describe_instance(target)
        if not inst.endpoint:
            raise VerificationFailed(
                f"restored DB instance {target} in {region} has no endpoint yet",
                resource=target,
                region=region,
            )
        assert req.secret_id is not None
        user, password = master_credentials(clients, region, req.secret_id)
        try:
            conn = connect(
                host=inst.endpoint,
                port=inst.port or 5432,
                dbname=req.db_name,
                user=user,
                password=password,
                connect_timeout=10,
                sslmode="prefer",
            )
        except Exception as exc:
            # Recorded, not raised: --cleanup must still delete the instance; the verdict step fails.
            ctx.set(
                "verify_error",
                f"cannot connect to restored DB instance {target} in {region} ({inst.endpoint}:{inst.port}): "
                f"{type(exc).__name__} — check the security groups allow this host, or run the "
                "verification from inside the VPC",
            )
            return None
        try:
            results = run_checks(conn, checks)
        finally:
            conn.close()
        ctx.set("checks", [r.to_dict() for r in results])
        failed = [r for r in results if not r.ok]
        if failed:
            ctx.set(
                "verify_error",
                f"restored DB instance {target} in {region} failed {len(failed)} of {len(results)} check(s): "
                + "; ".join(f"{r.name}: {r.detail}" for r in failed),
            )
        return None

    return Step(
        id="verify",
        title=f"Verify {target} ({len(checks)} check(s))",
        region=region,
        service="local",
        changes="none (read-only SQL checks)",
        depends_on=("restore",),
        operations=(
            Operation(
                "secretsmanager", "GetSecretValue", region, {"SecretId": req.secret_id}, mutating=False
            ),
        ),
        action=action,
        timeout=300.0,
        estimate=5.0,
    )


def _tags_of(rds: Rds, identifier: str) -> dict[str, str]:
    return rds.tags(rds.describe_instance(identifier))


def _verdict_step(req: RestoreRequest, *, depends: str) -> Step:
    """Fails the run (exit 1) when verification failed — after ``--cleanup`` had its chance."""

    def action(ctx: StepContext) -> Any:
        error = ctx.get("verify_error")
        if error:
            raise VerificationFailed(str(error), resource=req.target, region=req.region)
        return ctx.get("checks")

    return Step(
        id="verdict",
        title=f"Verdict on {req.target}",
        region=req.region,
        service="local",
        changes="none",
        depends_on=(depends,),
        action=action,
        timeout=10.0,
        estimate=0.1,
    )


def _cleanup_rds_step(req: RestoreRequest, *, depends: str) -> Step:
    region, target = req.region, req.target

    def check(ctx: StepContext) -> bool:
        return Rds(clients_of(ctx), region).find_instance(target) is None

    def action(ctx: StepContext) -> Any:
        rds = Rds(clients_of(ctx), region)
        tags = _tags_of(rds, target)
        if tags.get(TAG_CREATED_BY) != "dr-toolkit":
            raise BadInput(
                f"refusing to delete DB instance {target} in {region}: it was not created by dr-toolkit "
                f"(tag {TAG_CREATED_BY} missing)",
                resource=target,
                region=region,
            )
        rds.delete_instance(target, lift_protection=True)
        return None

    def wait(ctx: StepContext) -> bool:
        inst = Rds(clients_of(ctx), region).find_instance(target)
        return inst is None or inst.status == "deleted"

    return Step(
        id="cleanup",
        title=f"Delete restored {target}",
        region=region,
        service="rds",
        changes=f"deletes DB instance {target} in {region} (no final snapshot)",
        depends_on=(depends,),
        operations=(
            Operation(
                "rds",
                "ModifyDBInstance",
                region,
                {"DBInstanceIdentifier": target, "DeletionProtection": False},
            ),
            Operation(
                "rds", "DeleteDBInstance", region, {"DBInstanceIdentifier": target, "SkipFinalSnapshot": True}
            ),
        ),
        check=check,
        action=action,
        wait=wait,
        timeout=3600.0,
        estimate=600.0,
    )
