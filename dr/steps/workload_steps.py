"""The application's Kubernetes side: scale the deployments, point the DB secret at the promoted
instance, restart pods holding a stale connection, wait until pods are Ready, stop writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from dr.aws.rds import Rds
from dr.aws.secretsmanager import SecretValue, get_secret
from dr.errors import BadInput, NotFound, OperationFailed
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import TAG_PROMOTED_AT, IamRead, StepKind, clients_of, iso, kube_of

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.runbook.asl import AslEmitter
    from dr.topology import Estate, SiteView

# Deployment annotation recording the replica count before `stop-writes` (survives the laptop).
STOPPED_ANNOTATION = "dr-toolkit/replicas-before-stop-writes"
# Deployment annotation: "<db identifier>@<dr:promoted-at>" of the promotion its pods were restarted for.
RESTARTED_FOR = "dr-toolkit/restarted-for-promotion"
# DB Secret annotation, set in the patch that changes its value: the promotion it changed for.
CHANGED_FOR = "dr-toolkit/changed-for-promotion"
_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

# Output keys (journaled). A restart records why it was on the critical path under
# ``restarted:<deployment>``; a pods-ready wait records the Ready counts under its id with
# underscores (``pods_ready``, ``standby_pods_ready`` …).
OUT_RESTARTED = "restarted:"
OUT_PODS_READY = "pods_ready"
# stop-writes records each writer's replica count before it was scaled to 0.
OUT_REPLICAS_BEFORE = "replicas-before-"

# Connecting to a cluster with no kubeconfig context reads its endpoint and CA (EKS).
_CONNECT = "connecting to a cluster that has no kubeconfig context (EKS endpoint + token)"


def _k8s(action: str, region: str, **params: Any) -> Operation:
    return Operation("k8s", action, region, params)


# ---------------------------------------------------------------------------------------------
# The connection string (never printed, journaled or put in step outputs)
# ---------------------------------------------------------------------------------------------


def _password_from_secrets_manager(
    clients: ClientProvider, estate: Estate, region: str
) -> tuple[str | None, str | None]:
    """(username, password) from the app's Secrets Manager secret in ``region`` (never another region)."""
    try:
        data = get_secret(clients, region, estate.app.db_secret.secrets_manager_id).value.json()
    except NotFound:
        return None, None
    user = data.get("username")
    if data.get("password"):
        return user, str(data["password"])
    # The Pulumi program stores a descriptor pointing at the RDS-managed secret: follow it only
    # when that secret lives in this same region (unplanned failover must not call the source).
    arn = str(data.get("masterUserSecretArn") or "")
    if arn.startswith("arn:") and arn.split(":")[3] == region:
        try:
            managed = get_secret(clients, region, arn).value.json()
        except NotFound:
            return user, None
        return managed.get("username") or user, managed.get("password")
    return user, None


def desired_database_url(
    clients: ClientProvider, estate: Estate, target: SiteView, db: str, current: SecretValue | None
) -> SecretValue:
    """The DB URL the target's pods must use: the promoted instance's endpoint, same database.

    Credentials: Secrets Manager in the target region; else those already in the target cluster's
    secret (the password of a promoted replica is the source's, unchanged). Query parameters of the
    current URL (e.g. ``sslmode``) are kept.
    """
    inst = Rds(clients, target.region).describe_instance(db)
    if not inst.endpoint:
        raise OperationFailed(
            f"DB instance {db} in {target.region} reports no endpoint yet",
            resource=db,
            region=target.region,
            hint="wait until it is available, then re-run with --resume",
        )
    app_db = estate.app.database
    old = urlsplit(current.reveal()) if current is not None else None
    user, password = _password_from_secrets_manager(clients, estate, target.region)
    if password is None and old is not None and old.password:
        password = unquote(old.password)
    if password is None:
        raise BadInput(
            f"no database password for {db}: secret {estate.app.db_secret.secrets_manager_id} in "
            f"{target.region} holds none and secret {estate.app.db_secret.name} of cluster "
            f"{target.cluster.name} has no URL with one",
            resource=estate.app.db_secret.secrets_manager_id,
            region=target.region,
            hint="put the master credentials (username/password) in that secret, then --resume",
        )
    user = user or (unquote(old.username) if old is not None and old.username else None) or app_db.username
    port = inst.port or app_db.port
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{inst.endpoint}:{port}"
    path = old.path if old is not None and old.path not in ("", "/") else f"/{app_db.db_name}"
    # Keep the current URL's parameters exactly (a local database may not speak TLS); a URL built
    # from scratch requires TLS, as the Pulumi program's does.
    query = old.query if old is not None else "sslmode=require"
    scheme = old.scheme if old is not None and old.scheme else "postgresql"
    return SecretValue(urlunsplit((scheme, netloc, path, query, "")))


def _read_current_url(ctx: StepContext, estate: Estate, target: SiteView) -> SecretValue | None:
    app = estate.app
    try:
        return kube_of(ctx, target).read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
    except NotFound:
        return None


def promotion_marker(clients: ClientProvider, region: str, db: str) -> str:
    """``<db>@<dr:promoted-at>`` — one promotion (deployments are restarted once per marker); for an
    instance never promoted by us, ``<db>@created-<InstanceCreateTime>`` (one instance: a replica
    re-created under the same identifier is another)."""
    return _promotion(clients, region, db)[0]


def _promotion(clients: ClientProvider, region: str, db: str) -> tuple[str, dt.datetime | None]:
    """(:func:`promotion_marker`, when the instance now holding the identifier was created)."""
    rds = Rds(clients, region)
    inst = rds.describe_instance(db)
    promoted = rds.tags(inst).get(TAG_PROMOTED_AT)
    if promoted is None:
        promoted = f"created-{iso(inst.created)}" if inst.created else "unknown"
    return f"{db}@{promoted}", inst.created


# ---------------------------------------------------------------------------------------------
# Kinds
# ---------------------------------------------------------------------------------------------


class ScaleWorkloads(StepKind):
    """Set every deployment of a site to its replica count (and the HPA floor), dropping
    stop-writes marks."""

    name: ClassVar[str] = "scale-workloads"
    conditional: ClassVar[dict[str, str]] = {"eks:DescribeCluster": _CONNECT}
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("eks:DescribeCluster"),)

    def build(
        self,
        estate: Estate,
        view: SiteView,
        counts: dict[str, int],
        hpa_min: int | None,
        *,
        sid: str,
        title: str,
    ) -> Step:
        ns, region, app = estate.app.namespace, view.region, estate.app
        hpa_target = app.deployment(app.hpa.deployment).name if app.hpa else None

        def check(ctx: StepContext) -> bool:
            k = kube_of(ctx, view)
            for name, count in counts.items():
                info = k.get_deployment(ns, name)
                if info.replicas != count or STOPPED_ANNOTATION in info.annotations:
                    return False
            if hpa_target and hpa_min is not None:
                hpa = k.hpa_for(ns, hpa_target)
                if hpa is not None and hpa.min_replicas != hpa_min:
                    return False
            return True

        def action(ctx: StepContext) -> Any:
            k = kube_of(ctx, view)
            done: dict[str, Any] = {}
            if hpa_target and hpa_min is not None:
                hpa = k.hpa_for(ns, hpa_target)
                if hpa is not None and hpa.min_replicas != hpa_min:
                    k.patch_hpa(
                        ns, hpa.name, min_replicas=hpa_min, max_replicas=max(hpa.max_replicas, hpa_min)
                    )
                    done["hpa_min"] = hpa_min
            for name, count in counts.items():
                info = k.get_deployment(ns, name)
                if info.replicas != count:
                    k.scale_deployment(ns, name, count)
                    done[name] = {"from": info.replicas, "to": count}
                if STOPPED_ANNOTATION in info.annotations:
                    k.annotate_deployment(ns, name, {STOPPED_ANNOTATION: None})
            return done

        ops: list[Operation] = []
        if hpa_target and hpa_min is not None:
            ops.append(
                _k8s("PatchHorizontalPodAutoscaler", region, deployment=hpa_target, minReplicas=hpa_min)
            )
        ops += [_k8s("PatchDeploymentScale", region, name=n, replicas=c) for n, c in counts.items()]
        return Step(
            id=sid,
            title=title,
            region=region,
            service="k8s",
            changes=", ".join(f"{n} -> {c}" for n, c in counts.items())
            + (f"; HPA min -> {hpa_min}" if hpa_target and hpa_min is not None else ""),
            operations=tuple(ops),
            check=check,
            action=action,
            estimate=1.0,
            tags={"phase": "compute"},
            kind=self,
        )


class PatchDbSecret(StepKind):
    """Point a cluster's DB secret at an instance (the value never leaves the step; its patch
    also sets :data:`CHANGED_FOR`)."""

    name: ClassVar[str] = "patch-db-secret"
    # the promotion marker: the instance's dr:promoted-at tag
    reads: ClassVar[tuple[IamRead, ...]] = (
        IamRead("rds:ListTagsForResource"),
        IamRead("eks:DescribeCluster"),
    )
    conditional: ClassVar[dict[str, str]] = {"eks:DescribeCluster": _CONNECT}

    def build(self, estate: Estate, target: SiteView, db: str) -> Step:
        app, region = estate.app, target.region

        def desired(ctx: StepContext) -> tuple[SecretValue | None, SecretValue]:
            current = _read_current_url(ctx, estate, target)
            return current, desired_database_url(clients_of(ctx), estate, target, db, current)

        def check(ctx: StepContext) -> bool:
            current, want = desired(ctx)
            return current is not None and current == want

        def action(ctx: StepContext) -> Any:
            _current, want = desired(ctx)
            marker = promotion_marker(clients_of(ctx), region, db)
            changed = kube_of(ctx, target).patch_secret_key(
                app.namespace, app.db_secret.name, app.db_secret.key, want, annotations={CHANGED_FOR: marker}
            )
            return {"patched": changed}

        return Step(
            id="patch-db-secret",
            title=f"Point secret {app.db_secret.name} ({target.cluster.name}) at {db}",
            region=region,
            service="k8s",
            changes=f"secret {app.namespace}/{app.db_secret.name} key {app.db_secret.key}: host -> {db}'s endpoint",
            operations=(
                Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": db}, False),
                Operation(
                    "secretsmanager",
                    "GetSecretValue",
                    region,
                    {"SecretId": app.db_secret.secrets_manager_id},
                    False,
                ),
                _k8s("PatchSecret", region, name=app.db_secret.name, key=app.db_secret.key),
            ),
            check=check,
            action=action,
            estimate=1.0,
            tags={"phase": "config"},
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        """The secret is annotated with the promoted endpoint, never rewritten: the execution
        history would hold the credentials."""
        em, sid = emitter, step.id
        blocks = []
        for op in (op for op in step.operations if op.mutating):

            def patch(nxt: str | None, op: Operation = op) -> str:
                name = em.k8s_task(states, sid, op, fail)
                # The promoted endpoint, read in the target region (nothing from the source region).
                ep = em.name(f"{sid}: read promoted endpoint")
                db = next(
                    (
                        str(o.params["DBInstanceIdentifier"])
                        for o in em.plan.operations()
                        if o.action == "PromoteReadReplica"
                    ),
                    None,
                )
                if db is None:
                    em.chain(states, [name], nxt)
                    return str(name)
                em.task(
                    states,
                    ep,
                    em.sdk_resource("rds", "DescribeDBInstances"),
                    {"DBInstanceIdentifier": db},
                    service="rds",
                    read=True,
                    result_path="$.endpoint",
                    fail=fail,
                    result_selector={"address.$": "$.DBInstances[0].Endpoint.Address"},
                )
                states[name]["Parameters"]["RequestBody"] = {
                    "metadata": {"annotations": {"dr-toolkit/db-endpoint.$": "$.endpoint.address"}}
                }
                states[name]["Comment"] = (
                    f"Annotates the secret with {db}'s endpoint (dr-toolkit/db-endpoint); the URL is "
                    "not rewritten (credentials would land in the execution history). The secret "
                    "deployed by Pulumi already names this endpoint: RDS keeps a read replica's "
                    "address when it is promoted. The rolling restart that follows reconnects the pods "
                    "(always: the machine cannot tell whether a pod predates the instance)."
                )
                states[ep]["Next"] = name
                em.chain(states, [name], nxt)
                return str(ep)

            blocks.append(patch)
        return str(em.sequence(states, step, blocks, next_name))


class RestartDeployment(StepKind):
    """Rolling-restart one deployment once per promotion, when its pods' connection is stale.

    With ``app.dbSecret.restartPods: on-change`` (the default) the pods are restarted only when they
    may be connected to another database than the one now behind their connection string: when
    ``patch-db-secret`` changed the secret for this promotion (its :data:`CHANGED_FOR` marker, set in
    the same patch, survives a crash), or when a pod is older than the instance now holding the
    identifier (e.g. failback and reprotect create a new replica under the old name). Otherwise the
    pods already hold the right connection string, reconnect after the promotion's reboot, and the
    step is skipped: no rolling restart between a writable database and DNS.
    ``always`` restarts after every promotion. ``policy`` overrides the app's setting (reprotect
    restarts only stale pods: it promotes nothing).
    """

    name: ClassVar[str] = "restart-deployment"
    outputs: ClassVar[tuple[str, ...]] = (OUT_RESTARTED,)
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("eks:DescribeCluster"),)
    conditional: ClassVar[dict[str, str]] = {"eks:DescribeCluster": _CONNECT}

    def build(
        self,
        estate: Estate,
        target: SiteView,
        db: str,
        deployment: str,
        *,
        policy: Literal["on-change", "always"] | None = None,
        sid: str | None = None,
    ) -> Step:
        ns, region, secret = estate.app.namespace, target.region, estate.app.db_secret
        mode = policy or secret.restart_pods
        always = mode == "always"

        def why(ctx: StepContext) -> tuple[str, str | None]:
            """(promotion marker, why the pods need a restart — None: done for it, or not needed)."""
            marker, created = _promotion(clients_of(ctx), region, db)
            k = kube_of(ctx, target)
            if k.get_deployment(ns, deployment).annotations.get(RESTARTED_FOR) == marker:
                return marker, None
            if always:
                return marker, "app.dbSecret.restartPods is always"
            if k.secret_annotations(ns, secret.name).get(CHANGED_FOR) == marker:
                return marker, f"secret {secret.name} changed for this promotion"
            oldest = k.oldest_pod_created(ns, deployment)
            # creationTimestamp has whole seconds: a pod of the instance's own second is not "older"
            if oldest is not None and (created is None or oldest < created.replace(microsecond=0)):
                return (
                    marker,
                    f"a pod predates {db} (created {iso(created) if created else 'at an unknown time'})",
                )
            return marker, None

        def check(ctx: StepContext) -> bool:
            return why(ctx)[1] is None

        def action(ctx: StepContext) -> Any:
            marker, reason = why(ctx)
            if reason is None:
                return None
            # one PATCH: a kill can never leave a restart without its marker
            stamp = kube_of(ctx, target).rollout_restart(ns, deployment, annotations={RESTARTED_FOR: marker})
            ctx.set(f"{OUT_RESTARTED}{deployment}", reason)  # why this restart was on the critical path
            return {"restarted_at": stamp, "because": reason}

        when = "" if always else " if its pods may hold a stale connection (dbSecret.restartPods: on-change)"
        # the marker and the instance's creation time: DescribeDBInstances + its tags
        reads: tuple[Operation, ...] = tuple(
            Operation("rds", action, region, {"DBInstanceIdentifier": db}, False)
            for action in ("DescribeDBInstances", "ListTagsForResource")
        )
        if not always:
            reads += (
                Operation("k8s", "GetSecret", region, {"name": secret.name}, False),
                Operation("k8s", "ListPods", region, {"deployment": deployment}, False),
            )
        return Step(
            id=sid or f"restart-{deployment}",
            title=f"Rolling restart of {deployment} ({region}) to pick up the new DB endpoint{when}",
            region=region,
            service="k8s",
            changes=f"deployment {ns}/{deployment}: new ReplicaSet; annotation {RESTARTED_FOR}",
            operations=(
                *reads,
                _k8s("PatchDeployment", region, name=deployment, annotation=_RESTARTED_AT),
                _k8s("PatchDeployment", region, name=deployment, annotation=RESTARTED_FOR),
            ),
            check=check,
            action=action,
            estimate=1.0,
            tags={"phase": "config", "restart": mode},
            kind=self,
        )


def _rolled_out(k: str) -> dict[str, Any]:
    """Choice rule: ``kubectl rollout status`` done for the Deployment read at ``k`` (as
    :attr:`dr.kube.DeploymentInfo.rolled_out`): the controller has observed the current generation
    (right after a restart PATCH the old pods still count as ready), every replica runs the new
    template, no old pod is left, and the new ones are available and ready."""
    st, spec = f"{k}.status", f"{k}.spec"

    def present(field: str) -> dict[str, Any]:
        return {"Variable": f"{st}.{field}", "IsPresent": True}

    return {
        "And": [
            present("observedGeneration"),
            {"Variable": f"{st}.observedGeneration", "NumericGreaterThanEqualsPath": f"{k}.meta.generation"},
            present("updatedReplicas"),
            {"Variable": f"{st}.updatedReplicas", "NumericGreaterThanEqualsPath": f"{spec}.replicas"},
            present("replicas"),
            {"Variable": f"{st}.replicas", "NumericLessThanEqualsPath": f"{st}.updatedReplicas"},
            present("availableReplicas"),
            {"Variable": f"{st}.availableReplicas", "NumericGreaterThanEqualsPath": f"{st}.updatedReplicas"},
            present("readyReplicas"),
            {"Variable": f"{st}.readyReplicas", "NumericGreaterThanEqualsPath": f"{spec}.replicas"},
        ]
    }


class PodsReady(StepKind):
    """Wait until every deployment has its replicas updated and Ready (nodes joined, images pulled).

    A count of None: whatever replicas the deployment has (rolled out, all Ready).
    """

    name: ClassVar[str] = "pods-ready"
    outputs: ClassVar[tuple[str, ...]] = (OUT_PODS_READY,)
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("eks:DescribeCluster"),)
    conditional: ClassVar[dict[str, str]] = {"eks:DescribeCluster": _CONNECT}

    def build(
        self,
        estate: Estate,
        target: SiteView,
        counts: Mapping[str, int | None],
        *,
        timeout: float,
        sid: str = "pods-ready",
    ) -> Step:
        ns, region = estate.app.namespace, target.region
        key = sid.replace("-", "_")  # OUT_PODS_READY for the default id

        def wait(ctx: StepContext) -> bool:
            k = kube_of(ctx, target)
            ready: dict[str, int] = {}
            for name, count in counts.items():
                info = k.rollout_status(ns, name)
                ready[name] = info.ready
                if (count is not None and info.replicas != count) or not info.rolled_out:
                    return False
            ctx.set(key, ready)
            return True

        return Step(
            id=sid,
            title=f"Wait for pods Ready in {target.cluster.name} ({region}): "
            + ", ".join(f"{n} {c}/{c}" if c is not None else f"{n} rolled out" for n, c in counts.items()),
            region=region,
            service="k8s",
            changes="nothing (waits: NodegroupActive is not nodes Ready; pods Ready is)",
            operations=tuple(
                Operation("k8s", "GetDeployment", region, {"name": n}, mutating=False) for n in counts
            ),
            wait=wait,
            timeout=timeout,
            estimate=65.0,
            tags={"phase": "compute"},
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        em, sid = emitter, step.id
        blocks = []
        for op in (op for op in step.operations if op.action == "GetDeployment"):

            def deploy(nxt: str | None, op: Operation = op) -> str:
                k = "$.seen." + em.safe(f"{sid}_{op.params['name']}")
                method, path, _ = em.k8s(op, sid)
                return str(
                    em.poll(
                        states,
                        sid,
                        str(op.params["name"]),
                        ("arn:aws:states:::eks:call", em.eks_call(op, method, path), "eks"),
                        _rolled_out(k),
                        None,
                        nxt,
                        fail,
                        selector={
                            "status.$": "$.ResponseBody.status",
                            "spec.$": "$.ResponseBody.spec",
                            "meta.$": "$.ResponseBody.metadata",
                        },
                    )
                )

            blocks.append(deploy)
        return str(em.sequence(states, step, blocks, next_name))


class StopWrites(StepKind):
    """Scale one writer deployment to 0, recording its count first in :data:`STOPPED_ANNOTATION`
    (``dr ops stop-writes``; a planned failover's first steps)."""

    name: ClassVar[str] = "stop-writes"
    outputs: ClassVar[tuple[str, ...]] = (OUT_REPLICAS_BEFORE,)
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("eks:DescribeCluster"),)
    conditional: ClassVar[dict[str, str]] = {"eks:DescribeCluster": _CONNECT}

    def build(self, view: SiteView, namespace: str, deployment: str, *, timeout: float) -> Step:
        ns, name, region = namespace, deployment, view.region

        def check(ctx: StepContext) -> bool:
            info = kube_of(ctx, view).get_deployment(ns, name)
            return info.replicas == 0 and STOPPED_ANNOTATION in info.annotations

        def action(ctx: StepContext) -> None:
            k = kube_of(ctx, view)
            info = k.get_deployment(ns, name)
            if STOPPED_ANNOTATION not in info.annotations:  # keep the first recorded count on re-runs
                k.annotate_deployment(ns, name, {STOPPED_ANNOTATION: str(info.replicas)})
                ctx.set(f"{OUT_REPLICAS_BEFORE}{name}", info.replicas)
            k.scale_deployment(ns, name, 0)

        def wait(ctx: StepContext) -> bool:
            return kube_of(ctx, view).rollout_status(ns, name).total == 0

        return Step(
            id=f"stop-{name}",
            title=f"Stop writes: scale {name} to 0 ({region}), recording its replica count",
            region=region,
            service="k8s",
            changes=f"deployment {ns}/{name}: replicas -> 0; annotation {STOPPED_ANNOTATION}",
            operations=(
                _k8s("PatchDeployment", region, name=name, annotation=STOPPED_ANNOTATION),
                _k8s("PatchDeploymentScale", region, name=name, replicas=0),
            ),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=5.0,
            kind=self,
        )
