"""Continuous readiness in the DR region (standby stack): schedule, alarms, SNS topic.

Readiness must run where it survives the loss of the primary region, so only the *standby* stack
declares this (a role swap + ``pulumi up`` moves it with the role):

* ``aws.sns.Topic`` ``app.readiness.alarmTopic`` (default ``<app>-dr-readiness``): subscribe the
  on-call pager / e-mail to it;
* one ``aws.cloudwatch.MetricAlarm`` per readiness metric (dr/procedures/readiness_metrics.py: each
  check failing, replica lag above the RPO objective, recovery point older than its budget, a
  second writer or readiness no longer publishing), alarm and OK actions on the topic;
* with ``app.readiness.image`` (an ECR image: the toolkit installed on an AWS Lambda Python base
  image, the stack files in ``/var/task/stacks``): an ``aws.cloudwatch.EventRule``
  ``rate(N minutes)`` invoking an ``aws.lambda_.Function`` from that image (``dr.cli.readiness_lambda.handler``) whose role reads
  what readiness reads and may put metrics in the readiness namespace only; an EKS access entry
  (view, app namespace) maps the role in this cluster.

Why a Lambda and not a CronJob in the DR cluster: the cluster is one of the things readiness
checks (scaled to one node, or broken, a CronJob stops without telling anyone), EventBridge runs
the schedule whatever the cluster's state, and the ``single-writer`` alarm treats missing data as
breaching, so a schedule that stops is itself an alarm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from dr.infra._common import child, namespace_access, service_role, tags
from dr.procedures.readiness_metrics import alarm_specs
from dr.topology import StackConfig

EKS_VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"

# What `dr readiness` reads (both regions); the DB secret, the key and the one write it makes have
# statements of their own. tests/unit/procedures/test_readiness_role.py runs the handler's calls
# in moto and requires this list to equal what they call.
READ_ACTIONS = [
    "rds:DescribeDBInstances",
    "rds:DescribeDBParameterGroups",
    "rds:DescribeDBSnapshots",
    "rds:DescribeDBInstanceAutomatedBackups",
    "eks:DescribeCluster",
    "eks:DescribeNodegroup",
    "wafv2:GetIPSet",
    "wafv2:ListIPSets",
    "elasticache:DescribeReplicationGroups",
    "elasticache:DescribeCacheClusters",
    "elasticache:DescribeSnapshots",
    "cloudwatch:GetMetricStatistics",
    "route53:ListHostedZonesByName",
    "route53:ListResourceRecordSets",
    "route53:GetHealthCheck",  # which record a health check watches (failover state)
    "route53:GetHealthCheckStatus",
    "route53:ListTagsForResource",  # a health check's dr:* tags
    "acm:ListCertificates",
    "acm:DescribeCertificate",
]


def schedule_expression(minutes: int) -> str:
    return f"rate({minutes} minute{'s' if minutes != 1 else ''})"


def function_name(cfg: StackConfig) -> str:
    return f"{cfg.app.name}-dr-readiness"[:64]


@dataclass
class ReadinessArgs:
    cfg: StackConfig
    cluster_name: pulumi.Input[str]
    # ARN of the app's Secrets Manager secret (readiness compares the host it points at).
    app_secret_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]


class ReadinessComponent(pulumi.ComponentResource):
    def __init__(self, name: str, args: ReadinessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Readiness", name, None, opts)
        cfg, app = args.cfg, args.cfg.app
        spec = app.readiness
        self.topic = aws.sns.Topic(
            "alarms", name=spec.alarm_topic or f"{app.name}-dr-readiness", tags=tags(cfg), opts=child(self)
        )
        self.alarms = [
            aws.cloudwatch.MetricAlarm(
                a.name,
                name=a.name,
                alarm_description=a.description,
                namespace=spec.namespace,
                metric_name=a.metric,
                dimensions=a.dimensions,
                comparison_operator=a.comparison,
                threshold=a.threshold,
                statistic=a.statistic,
                period=a.period,
                evaluation_periods=a.evaluation_periods,
                treat_missing_data=a.treat_missing_data,
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                tags=tags(cfg),
                opts=child(self),
            )
            for a in alarm_specs(app)
        ]
        self.rule: aws.cloudwatch.EventRule | None = None
        self.function: aws.lambda_.Function | None = None
        if spec.image is None:
            pulumi.log.warn(
                "readiness: app.readiness.image is not set, so no schedule is deployed (alarms and topic "
                "are): publish from CI with `dr readiness --publish`, or set the image (docs/status-readiness.md)"
            )
        else:
            self._schedule(args, spec.image)
        self.register_outputs({"topicArn": self.topic.arn})

    def _schedule(self, args: ReadinessArgs, image: str) -> None:
        cfg, spec = args.cfg, args.cfg.app.readiness
        self.role = service_role(
            "readiness",
            self,
            cfg,
            role_name=f"{cfg.app.name}-dr-readiness-{cfg.region}",
            service="lambda.amazonaws.com",
            description="Scheduled dr readiness --publish (read-only + readiness metrics)",
        )
        aws.iam.RolePolicyAttachment(
            "readiness-logs",
            role=self.role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            opts=child(self),
        )

        def doc(values: list[object]) -> str:
            secret, key = str(values[0]), str(values[1])
            return json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Sid": "ReadinessReads", "Effect": "Allow", "Action": READ_ACTIONS, "Resource": "*"},
                        {
                            "Sid": "ReadinessSecret",
                            "Effect": "Allow",
                            "Action": ["secretsmanager:GetSecretValue"],
                            "Resource": [secret],
                        },
                        {
                            "Sid": "ReadinessKey",
                            "Effect": "Allow",
                            "Action": ["kms:Decrypt"],
                            "Resource": [key],
                        },
                        {
                            "Sid": "ReadinessMetrics",
                            "Effect": "Allow",
                            "Action": ["cloudwatch:PutMetricData"],
                            "Resource": "*",
                            "Condition": {"StringEquals": {"cloudwatch:namespace": spec.namespace}},
                        },
                    ],
                }
            )

        aws.iam.RolePolicy(
            "readiness",
            role=self.role.id,
            policy=pulumi.Output.all(args.app_secret_arn, args.kms_key_arn).apply(doc),
            opts=child(self),
        )
        self.function = aws.lambda_.Function(
            "readiness",
            name=function_name(cfg),
            package_type="Image",
            image_uri=image,
            image_config=aws.lambda_.FunctionImageConfigArgs(commands=["dr.cli.readiness_lambda.handler"]),
            role=self.role.arn,
            timeout=300,
            memory_size=1024,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={"DR_STACK_DIR": "/var/task/stacks", "DR_STACK": cfg.stack}
            ),
            tags=tags(cfg),
            opts=child(self),
        )
        self.rule = aws.cloudwatch.EventRule(
            "readiness",
            name=function_name(cfg),
            description=f"dr readiness --publish every {spec.schedule_minutes} min in {cfg.region}",
            schedule_expression=schedule_expression(spec.schedule_minutes),
            tags=tags(cfg),
            opts=child(self),
        )
        aws.cloudwatch.EventTarget("readiness", rule=self.rule.name, arn=self.function.arn, opts=child(self))
        aws.lambda_.Permission(
            "readiness",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="events.amazonaws.com",
            source_arn=self.rule.arn,
            opts=child(self),
        )
        # Kubernetes reads (deployments, the DB secret's host): view rights on the app namespace.
        namespace_access(
            "readiness",
            self,
            cfg,
            cluster_name=args.cluster_name,
            principal_arn=self.role.arn,
            policy_arn=EKS_VIEW_POLICY,
        )


def deploy_for(estate_component: object, cfg: StackConfig) -> ReadinessComponent | None:
    """Continuous readiness in a standby stack (the DR region); nothing in a primary stack."""
    if cfg.role != "standby":
        return None
    from typing import Any

    est: Any = estate_component
    return ReadinessComponent(
        "readiness",
        ReadinessArgs(
            cfg=cfg,
            cluster_name=est.cluster.cluster.name,
            app_secret_arn=est.database.app_secret_arn,
            kms_key_arn=est.database.key.arn,
        ),
        pulumi.ResourceOptions(parent=est),
    )
