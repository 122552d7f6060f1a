"""ElastiCache (Redis) adapter: replication groups and snapshots.

ElastiCache cannot copy a snapshot to another region (only within a region, or export to S3);
procedures must say so rather than pretend.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dr.aws.calls import aware as _aware
from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider, client_error_type
from dr.errors import BadInput, NotFound, from_client_error


@dataclass(frozen=True)
class ReplicationGroup:
    identifier: str
    region: str
    status: str
    node_type: str | None
    num_cache_clusters: int
    automatic_failover: str | None
    multi_az: str | None
    primary_endpoint: str | None
    arn: str | None
    # Taken from the first member cluster (restores inherit them).
    subnet_group: str | None = None
    security_groups: tuple[str, ...] = ()
    parameter_group: str | None = None
    engine_version: str | None = None
    # Security settings a restore must carry: a group restored without them serves plaintext
    # (``rediss://`` clients cannot connect) and stores the cache unencrypted.
    transit_encryption: bool = False
    at_rest_encryption: bool = False
    kms_key_id: str | None = None
    port: int | None = None
    auth_token_enabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "region": self.region,
            "status": self.status,
            "node_type": self.node_type,
            "num_cache_clusters": self.num_cache_clusters,
            "automatic_failover": self.automatic_failover,
            "primary_endpoint": self.primary_endpoint,
            "engine_version": self.engine_version,
            "transit_encryption": self.transit_encryption,
            "at_rest_encryption": self.at_rest_encryption,
            "kms_key_id": self.kms_key_id,
            "port": self.port,
            "auth_token_enabled": self.auth_token_enabled,
        }


@dataclass(frozen=True)
class CacheSnapshot:
    identifier: str
    region: str
    source: str
    status: str
    snapshot_source: str  # "manual" | "automated"
    created: dt.datetime | None
    node_type: str | None
    arn: str | None
    encrypted: bool = False
    kms_key_id: str | None = None
    kind: str = "redis"

    @property
    def automated(self) -> bool:
        return self.snapshot_source != "manual"

    @property
    def size_gb(self) -> int | None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.identifier,
            "kind": self.kind,
            "region": self.region,
            "arn": self.arn,
            "source": self.source,
            "status": self.status,
            "type": self.snapshot_source,
            "created": self.created,
            "size_gb": None,
            "encrypted": self.encrypted,
            "kms_key_id": self.kms_key_id,
        }

    @classmethod
    def from_api(cls, raw: dict[str, Any], region: str) -> CacheSnapshot:
        nodes = raw.get("NodeSnapshots") or []
        created = _aware(nodes[0].get("SnapshotCreateTime")) if nodes else None
        return cls(
            identifier=raw["SnapshotName"],
            region=region,
            source=raw.get("ReplicationGroupId") or raw.get("CacheClusterId") or "",
            status=raw.get("SnapshotStatus", "unknown"),
            snapshot_source=raw.get("SnapshotSource", "manual"),
            created=created,
            node_type=raw.get("CacheNodeType"),
            arn=raw.get("ARN"),
            encrypted=bool(raw.get("KmsKeyId")),
            kms_key_id=raw.get("KmsKeyId"),
        )


def restore_settings(like: ReplicationGroup) -> dict[str, Any]:
    """CreateReplicationGroup parameters that make a restored group match ``like``: size, network,
    engine version, port and encryption (in transit, at rest with its KMS key). The AUTH token is a
    secret and never part of these (``restore_replication_group(auth_token=…)``)."""
    out: dict[str, Any] = {"NumCacheClusters": max(like.num_cache_clusters, 1)}
    if like.num_cache_clusters >= 2:
        out["AutomaticFailoverEnabled"] = True
    if like.subnet_group:
        out["CacheSubnetGroupName"] = like.subnet_group
    if like.security_groups:
        out["SecurityGroupIds"] = list(like.security_groups)
    if like.parameter_group:
        out["CacheParameterGroupName"] = like.parameter_group
    if like.engine_version:
        out["EngineVersion"] = like.engine_version
    if like.port:
        out["Port"] = like.port
    if like.transit_encryption:
        out["TransitEncryptionEnabled"] = True
    if like.at_rest_encryption:
        out["AtRestEncryptionEnabled"] = True
        if like.kms_key_id:
            out["KmsKeyId"] = like.kms_key_id
    return out


class ElastiCache:
    """ElastiCache calls in one region."""

    def __init__(self, clients: ClientProvider, region: str) -> None:
        self.clients = clients
        self.region = region

    @property
    def client(self) -> Any:
        return self.clients.client("elasticache", self.region)

    def describe_replication_group(self, identifier: str) -> ReplicationGroup:
        with aws_errors(
            resource=f"Redis replication group {identifier}", region=self.region, action="describe"
        ):
            groups_raw = self.client.describe_replication_groups(ReplicationGroupId=identifier)
        raw = groups_raw["ReplicationGroups"][0]
        members = raw.get("MemberClusters") or []
        cluster: dict[str, Any] = {}
        if members:
            # Settings restores inherit (subnet group, SGs, parameter group) live on member clusters.
            client_error = client_error_type()
            try:
                clusters = self.client.describe_cache_clusters(CacheClusterId=members[0]).get(
                    "CacheClusters", []
                )
                cluster = clusters[0] if clusters else {}
            except client_error:
                cluster = {}  # member not visible (moto lists members it never creates)
        groups = raw.get("NodeGroups") or [{}]
        # Cluster mode disabled: the primary endpoint; enabled: the configuration endpoint.
        primary = groups[0].get("PrimaryEndpoint") or raw.get("ConfigurationEndpoint") or {}
        endpoint = primary.get("Address")
        params = cluster.get("CacheParameterGroup") or {}
        return ReplicationGroup(
            identifier=raw["ReplicationGroupId"],
            region=self.region,
            status=raw.get("Status", "unknown"),
            node_type=raw.get("CacheNodeType") or cluster.get("CacheNodeType"),
            num_cache_clusters=len(members),
            automatic_failover=raw.get("AutomaticFailover"),
            multi_az=raw.get("MultiAZ"),
            primary_endpoint=endpoint,
            arn=raw.get("ARN"),
            subnet_group=cluster.get("CacheSubnetGroupName"),
            security_groups=tuple(
                g["SecurityGroupId"] for g in cluster.get("SecurityGroups") or () if "SecurityGroupId" in g
            ),
            parameter_group=params.get("CacheParameterGroupName"),
            engine_version=cluster.get("EngineVersion") or raw.get("EngineVersion"),
            transit_encryption=bool(raw.get("TransitEncryptionEnabled")),
            at_rest_encryption=bool(raw.get("AtRestEncryptionEnabled")),
            kms_key_id=raw.get("KmsKeyId"),
            port=primary.get("Port"),
            auth_token_enabled=bool(raw.get("AuthTokenEnabled")),
        )

    def find_replication_group(self, identifier: str) -> ReplicationGroup | None:
        try:
            return self.describe_replication_group(identifier)
        except NotFound:
            return None

    def list_snapshots(self, *, replication_group: str | None = None) -> list[CacheSnapshot]:
        kwargs: dict[str, Any] = {}
        if replication_group:
            kwargs["ReplicationGroupId"] = replication_group
        out: list[CacheSnapshot] = []
        with aws_errors(
            resource=f"Redis snapshots of {replication_group or 'all groups'}",
            region=self.region,
            action="list",
        ):
            for page in self.client.get_paginator("describe_snapshots").paginate(**kwargs):
                out.extend(CacheSnapshot.from_api(s, self.region) for s in page.get("Snapshots", []))
        return out

    def find_snapshot(self, name: str) -> CacheSnapshot | None:
        client_error = client_error_type()
        try:
            raw = self.client.describe_snapshots(SnapshotName=name).get("Snapshots", [])
        except client_error as err:
            code = err.response.get("Error", {}).get("Code", "")  # type: ignore[attr-defined]
            if "NotFound" in code:
                return None
            raise from_client_error(
                err, resource=f"Redis snapshot {name}", region=self.region, action="describe"
            ) from None
        return CacheSnapshot.from_api(raw[0], self.region) if raw else None

    def create_snapshot(self, replication_group: str, name: str) -> CacheSnapshot:
        with aws_errors(
            resource=f"Redis snapshot {name} of {replication_group}", region=self.region, action="create"
        ):
            raw = self.client.create_snapshot(ReplicationGroupId=replication_group, SnapshotName=name)[
                "Snapshot"
            ]
        return CacheSnapshot.from_api(raw, self.region)

    def delete_snapshot(self, name: str) -> None:
        with aws_errors(resource=f"Redis snapshot {name}", region=self.region, action="delete"):
            self.client.delete_snapshot(SnapshotName=name)

    def restore_replication_group(
        self,
        snapshot: CacheSnapshot,
        target: str,
        *,
        like: ReplicationGroup | None,
        auth_token: str | None = None,
    ) -> None:
        """Create replication group ``target`` seeded from ``snapshot`` (settings from ``like``)."""
        self._create_group(
            target,
            {
                "ReplicationGroupDescription": f"restored from snapshot {snapshot.identifier}",
                "SnapshotName": snapshot.identifier,
            },
            like=like,
            node_type=snapshot.node_type,
            auth_token=auth_token,
            what=f"from snapshot {snapshot.identifier}",
        )

    def restore_replication_group_from_s3(
        self,
        rdb_arns: list[str],
        target: str,
        *,
        like: ReplicationGroup,
        auth_token: str | None = None,
    ) -> None:
        """Create ``target`` seeded from RDB files in S3 (``SnapshotArns``, e.g.
        ``arn:aws:s3:::bucket/key.rdb``): how a snapshot reaches another region — export it
        (``CopySnapshot`` with ``TargetBucket``, same region), copy the object across regions in S3,
        restore from it there. ElastiCache has no cross-region snapshot copy."""
        if not rdb_arns or not all(a.startswith("arn:aws:s3:::") for a in rdb_arns):
            raise BadInput(
                f"Redis restore of {target} from S3 needs S3 object ARNs (arn:aws:s3:::bucket/key.rdb), "
                f"got {rdb_arns}",
                resource=target,
                region=self.region,
            )
        self._create_group(
            target,
            {"ReplicationGroupDescription": "restored from S3 RDB", "SnapshotArns": list(rdb_arns)},
            like=like,
            node_type=None,
            auth_token=auth_token,
            what="from S3 " + ", ".join(rdb_arns),
        )

    def _create_group(
        self,
        target: str,
        source: dict[str, Any],
        *,
        like: ReplicationGroup | None,
        node_type: str | None,
        auth_token: str | None,
        what: str,
    ) -> None:
        kwargs: dict[str, Any] = {"ReplicationGroupId": target, "Engine": "redis", **source}
        node_type = (like.node_type if like else None) or node_type
        if node_type:
            kwargs["CacheNodeType"] = node_type
        if like is not None:
            kwargs.update(restore_settings(like))
        if auth_token is not None:
            # ElastiCache: AuthToken only with in-transit encryption (InvalidParameterCombination).
            if not kwargs.get("TransitEncryptionEnabled"):
                raise BadInput(
                    f"Redis replication group {target}: an AUTH token needs in-transit encryption",
                    resource=target,
                    region=self.region,
                    hint="declare TLS on the group (the Pulumi cache sets transit_encryption_enabled)",
                )
            kwargs["AuthToken"] = auth_token
        with aws_errors(
            resource=f"Redis replication group {target} ({what})", region=self.region, action="restore"
        ):
            self.client.create_replication_group(**kwargs)

    def delete_replication_group(self, identifier: str) -> None:
        with aws_errors(
            resource=f"Redis replication group {identifier}", region=self.region, action="delete"
        ):
            self.client.delete_replication_group(ReplicationGroupId=identifier)
