"""What the readiness checks read of one site (AWS and its cluster), as jobs for
:func:`dr.procedures.status.gather`: every read runs in parallel and fails on its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dr.errors import DrError
from dr.procedures.readiness_checks import points_at
from dr.procedures.status import Outcome

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.topology import Estate, SiteView


def parameter_group_family(clients: ClientProvider, region: str, name: str) -> str | None:
    """The family (e.g. ``postgres15``) of DB parameter group ``name``."""
    from dr.aws.calls import aws_errors

    with aws_errors(resource=f"DB parameter group {name}", region=region, action="describe"):
        raw = clients.client("rds", region).describe_db_parameter_groups(DBParameterGroupName=name)
    groups = raw.get("DBParameterGroups") or []
    return str(groups[0].get("DBParameterGroupFamily")) if groups else None


def secret_host(value: str) -> tuple[str | None, int | None]:
    """Host and port a DB secret points at: a URL (postgresql://…) or a JSON document with ``host``.

    Only host and port leave this function — never the user, password or the whole value.
    """
    text = value.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
            return parts.hostname, parts.port
        except ValueError:
            return None, None
    try:
        doc = json.loads(text)
    except ValueError:
        return None, None
    if isinstance(doc, dict) and doc.get("host"):
        port = doc.get("port")
        return str(doc["host"]), int(port) if isinstance(port, (int, str)) and str(port).isdigit() else None
    return None, None


def serving_database(
    own: Any, secret: tuple[str | None, int | None], instances: Callable[[], list[Any]]
) -> Any:
    """The database really serving a site Route53 serves: the standalone instance its DB secret
    points at — the restored instance a repoint (``dr restore pitr`` then the app's secret) or a
    ``dr failover --db`` moved the application onto — else ``own`` (the stack files' instance, or
    None when it is gone). ``secret``: the host and port of the site's DB secret; ``instances``
    lists the region's instances, called only when the secret points elsewhere than ``own``."""
    host, port = secret
    if not host or (own is not None and points_at(host, port, own)):
        return own
    for inst in instances():
        if not inst.is_replica and points_at(host, port, inst):
            return inst
    return own


def serving_dbs(
    estate: Estate,
    clients: ClientProvider,
    dbs: dict[str, Outcome],
    secrets: dict[str, Outcome],
    serving: Outcome,
) -> dict[str, Outcome]:
    """``dbs`` (side -> the stack files' instance) with the side Route53 serves judged on the
    database really serving it (:func:`serving_database`). A secret that cannot be read leaves the
    stack files' instance (the db-secret check reports the secret)."""
    from dr.aws.rds import Rds
    from dr.procedures.status import attempt

    views = {"primary": estate.primary, "secondary": estate.secondary}
    side = next((s for s, v in views.items() if serving.ok and v.region == serving.value), None)
    if side is None or not dbs[side].ok or not secrets[side].ok:
        return dbs
    own, rds = dbs[side].value["db"], Rds(clients, views[side].region)
    found = attempt(lambda: serving_database(own, secrets[side].value, rds.list_instances))
    if found.ok and (found.value is own or found.value is None):
        return dbs
    return {**dbs, side: found if not found.ok else Outcome({"db": found.value})}


def site_jobs(
    estate: Estate, view: SiteView, clients: ClientProvider, kube: KubeFactory | None
) -> dict[str, Callable[[], Any]]:
    from dr.aws import eks, wafv2
    from dr.aws.rds import Rds
    from dr.aws.secretsmanager import get_secret

    region, app = view.region, estate.app

    def db() -> dict[str, Any]:
        inst = Rds(clients, region).describe_instance(view.database.identifier)
        family = (
            parameter_group_family(clients, region, inst.parameter_group) if inst.parameter_group else None
        )
        return {"db": inst, "family": family}

    def need_kube() -> KubeFactory:
        if kube is None:
            raise DrError("no Kubernetes access configured")
        return kube

    def deployments() -> dict[str, Any]:
        return {d.name: d for d in need_kube()(view).list_deployments(app.namespace)}

    def k8s_secret() -> tuple[str | None, int | None]:
        value = need_kube()(view).read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
        return secret_host(value.reveal())

    def sm_secret() -> tuple[str | None, int | None]:
        return secret_host(get_secret(clients, region, app.db_secret.secrets_manager_id).value.reveal())

    return {
        "db": db,
        "cluster": lambda: eks.describe_cluster(clients, region, view.cluster.name),
        "nodegroup": lambda: eks.describe_nodegroup(
            clients, region, view.cluster.name, view.cluster.nodegroup.name
        ),
        "ip_set": lambda: wafv2.get_ip_set(clients, region, view.edge.ip_set_name),
        "deployments": deployments,
        "k8s_secret": k8s_secret,
        "sm_secret": sm_secret,
    }


def redis_jobs(clients: ClientProvider, estate: Estate) -> dict[str, Callable[[], Any]]:
    from dr.aws.elasticache import ElastiCache
    from dr.steps.redis_ready import estate_cache_groups, newest_cache_snapshot

    def group(view: SiteView) -> Any:
        return ElastiCache(clients, view.region).find_replication_group(view.cache.replication_group_id)

    s = estate.secondary
    return {
        "p:redis": lambda: group(estate.primary),
        "s:redis": lambda: group(s),
        "redis_snapshot": lambda: newest_cache_snapshot(clients, s.region, estate_cache_groups(estate)),
    }
