"""moto's backends in this process (the fake's state), and the moto behaviour patched in them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dr.sandbox.fakeaws.wire import ACCOUNT_ID


def rds_backend(region: str) -> Any:
    from moto.rds.models import rds_backends

    return rds_backends[ACCOUNT_ID][region]


def eks_backend(region: str) -> Any:
    from moto.eks.models import eks_backends

    return eks_backends[ACCOUNT_ID][region]


def elasticache_backend(region: str) -> Any:
    from moto.elasticache.models import elasticache_backends

    return elasticache_backends[ACCOUNT_ID][region]


def iam_backend() -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT_ID]["aws"]


def route53_batch_as_whole(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap moto's ``Route53Backend.change_resource_record_sets`` so a batch that DELETEs a record
    set and CREATEs it again (e.g. with another Failover role) is accepted, as Route53 accepts it
    (it validates a batch as a whole). moto checks each CREATE against its change journal before
    any DELETE of the batch applies and refuses it; the pair is applied as one UPSERT instead."""

    def key(rrs: dict[str, Any]) -> tuple[str, str, str | None]:
        return (str(rrs.get("Name", "")).rstrip(".").lower(), str(rrs.get("Type")), rrs.get("SetIdentifier"))

    def change(self: Any, zoneid: str, change_list: list[dict[str, Any]]) -> Any:
        deleted = {key(c["ResourceRecordSet"]) for c in change_list if c.get("Action") == "DELETE"}
        recreated = {
            key(c["ResourceRecordSet"])
            for c in change_list
            if c.get("Action") == "CREATE" and key(c["ResourceRecordSet"]) in deleted
        }
        if recreated:
            change_list = [
                {**c, "Action": "UPSERT"}
                if c.get("Action") == "CREATE" and key(c["ResourceRecordSet"]) in recreated
                else c
                for c in change_list
                if not (c.get("Action") == "DELETE" and key(c["ResourceRecordSet"]) in recreated)
            ]
        return original(self, zoneid, change_list)

    change.__wrapped__ = original  # type: ignore[attr-defined]
    return change


def install_route53_batch_as_whole() -> None:
    """Apply :func:`route53_batch_as_whole` to moto, once per process."""
    from moto.route53.models import Route53Backend

    current = Route53Backend.change_resource_record_sets
    if not hasattr(current, "__wrapped__"):
        Route53Backend.change_resource_record_sets = route53_batch_as_whole(current)  # type: ignore[method-assign]


def route53_backend() -> Any:
    from moto.route53.models import route53_backends

    return route53_backends[ACCOUNT_ID]["aws"]


def cloudwatch_backend(region: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[ACCOUNT_ID][region]


def find_db_by_arn(arn: str) -> tuple[str, Any] | None:
    parts = arn.split(":")
    if len(parts) < 7:
        return None
    region, ident = parts[3], parts[6]
    db = rds_backend(region).databases.get(ident)
    return (region, db) if db is not None else None
