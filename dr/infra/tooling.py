"""Tooling: the state the ``dr`` CLI keeps — the DynamoDB lock table and the journal buckets.

The lock table is a global table: the home stack (the one without ``primaryStackRef``) creates
it, the other stack adds its region as a replica, so a lock can be taken while either region is
down. Ownership never follows the role, so a failover's role swap moves no table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from dr.infra._common import child, data_store, journal_bucket, lock_table, tags
from dr.topology import StackConfig


@dataclass
class ToolingArgs:
    cfg: StackConfig
    kms_key_arn: pulumi.Input[str]
    # Non-home stacks only: the home stack's lock table ARN (from the StackReference).
    lock_table_arn: pulumi.Input[str] | None = None


class Tooling(pulumi.ComponentResource):
    def __init__(self, name: str, args: ToolingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Tooling", name, None, opts)
        cfg = args.cfg
        table_name = lock_table(cfg.app)
        if args.lock_table_arn is None:
            table = aws.dynamodb.Table(
                "lock",
                name=table_name,
                billing_mode="PAY_PER_REQUEST",
                hash_key="lock_id",
                attributes=[{"name": "lock_id", "type": "S"}],
                ttl={"attribute_name": "expires_at", "enabled": True},
                point_in_time_recovery={"enabled": True},
                server_side_encryption={"enabled": True},
                stream_enabled=True,
                stream_view_type="NEW_AND_OLD_IMAGES",
                deletion_protection_enabled=True,
                tags=tags(cfg),
                # Replicas are added by the standby stack (TableReplica).
                opts=data_store(self, ignore_changes=["replicas"]),
            )
            self.lock_table_arn: pulumi.Output[str] = table.arn
        else:
            replica = aws.dynamodb.TableReplica(
                "lock",
                global_table_arn=args.lock_table_arn,
                point_in_time_recovery=True,
                deletion_protection_enabled=True,
                tags=tags(cfg, Name=table_name),
                opts=data_store(self),
            )
            self.lock_table_arn = replica.arn

        self.bucket = aws.s3.Bucket(
            "journal", bucket=journal_bucket(cfg.app, cfg.region), tags=tags(cfg), opts=data_store(self)
        )
        aws.s3.BucketVersioning(
            "journal", bucket=self.bucket.id, versioning_configuration={"status": "Enabled"}, opts=child(self)
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            "journal",
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": args.kms_key_arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=child(self),
        )
        aws.s3.BucketPublicAccessBlock(
            "journal",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child(self),
        )
        self.register_outputs({"lockTableArn": self.lock_table_arn, "journalBucket": self.bucket.bucket})
