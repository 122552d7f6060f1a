"""The typed model of the two-region estate — the single source of names and regions.

Loaded from ``stacks/Pulumi.<stack>.yaml`` with plain YAML (no Pulumi CLI, no pulumi import), so
the Pulumi program, the ``dr`` CLI and the sandbox agree on every physical name and region.

A stack file looks like::

    config:
      aws:region: us-west-2
      dr-toolkit:role: primary          # primary | standby
      dr-toolkit:peerStack: dr          # the other half of the pair
      dr-toolkit:app: {...}             # app-wide settings, identical in both stack files
      dr-toolkit:site: {...}            # this region's settings

``load_estate(stack_dir, stack)`` reads the named stack file and its peer and returns an
:class:`Estate` with ``primary`` and ``secondary`` sites. Every validation error names the file,
the key and the fix (exit code 2 through :class:`dr.errors.ConfigError`).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dr.errors import ConfigError

PROJECT = "dr-toolkit"
NS = PROJECT + ":"

# RDS settings every instance of the estate has, whoever creates it (the Pulumi program, or a
# failback/reprotect re-creating a replica that becomes production).
DB_STORAGE_TYPE = "gp3"
DB_LOG_EXPORTS = ("postgresql", "upgrade")
DB_PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7

# AWS commercial, GovCloud and China regions (static: `dr --help` must not load botocore).
AWS_REGIONS = frozenset(
    [
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-south-1",
        "ap-south-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-south-1",
        "eu-south-2",
        "eu-north-1",
        "il-central-1",
        "me-south-1",
        "me-central-1",
        "mx-central-1",
        "sa-east-1",
        "us-gov-east-1",
        "us-gov-west-1",
        "cn-north-1",
        "cn-northwest-1",
    ]
)

_RDS_ID = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)$")
_CACHE_ID = re.compile(r"^[a-z](?!.*--)[a-z0-9-]{0,39}(?<!-)$")
_ELB_NAME = re.compile(r"^(?!internal-)[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
_EKS_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
_K8S_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_K8S_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_WAF_NAME = re.compile(r"^[\w-]{1,128}$")
_PG_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# PostgreSQL reserved words RDS refuses as master user name (subset that matters in practice).
_PG_RESERVED_USERS = frozenset({"postgres", "rdsadmin", "admin", "user", "public", "all"})


def _check(pattern: re.Pattern[str], what: str, rule: str) -> Any:
    def validator(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what}: {rule}")
        return value

    return validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class _Camel(_Model):
    """Stack files use Pulumi's camelCase; Python uses snake_case."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, alias_generator=_camel)


# ---------------------------------------------------------------------------------------------
# App-wide settings (identical in both stack files)
# ---------------------------------------------------------------------------------------------


class Deployment(_Camel):
    name: str
    replicas: Annotated[int, Field(ge=0, le=1000)]
    image: str = "nginx:1.27"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    # Writers are scaled to zero by `stop-writes` and planned failover.
    writes_to_database: bool = True
    # Serves the public endpoint (its pods back the ALB and the /health probe).
    serves_traffic: bool = False

    _name = field_validator("name")(
        _check(_K8S_NAME, "Kubernetes deployment name", "lowercase letters, digits and '-', max 63")
    )


class Hpa(_Camel):
    deployment: str
    min_replicas: Annotated[int, Field(ge=1)]
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    target_cpu_percent: Annotated[int, Field(ge=1, le=100)] = 70

    @model_validator(mode="after")
    def _bounds(self) -> Hpa:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"hpa.minReplicas ({self.min_replicas}) is greater than hpa.maxReplicas ({self.max_replicas})"
            )
        return self


class DbSecret(_Camel):
    name: str
    key: str = "database-url"
    # Secrets Manager secret holding the master credentials (the runbook's `<app>/database`).
    secrets_manager_id: str
    # When a failover (or failback) rolls the app's pods after the promotion:
    # "on-change" — only when their connection may be stale: the failover changed this secret, or a
    #   pod is older than the instance holding the identifier (a replica re-created under the old
    #   name). A standby's secret already names its replica, whose endpoint survives the promotion,
    #   and the pods' pools reconnect after its reboot: no restart on the critical path of an outage.
    # "always" — after every promotion (for apps whose connection pools do not recover by themselves).
    restart_pods: Literal["on-change", "always"] = "on-change"

    _name = field_validator("name")(_check(_K8S_NAME, "Kubernetes secret name", "DNS-1123 label"))
    _key = field_validator("key")(_check(_K8S_KEY, "secret key", "letters, digits, '-', '_', '.'"))


class DatabaseApp(_Camel):
    engine_version: str = "15"
    db_name: str
    username: str
    port: int = 5432

    _db = field_validator("db_name")(
        _check(_PG_IDENT, "database name", "lowercase letter or '_' first, then [a-z0-9_], max 63")
    )

    @field_validator("engine_version")
    @classmethod
    def _pg15(cls, value: str) -> str:
        if not re.match(r"^1[5-9](\.\d+)?$", value):
            raise ValueError(f"engine version {value!r} is not PostgreSQL 15 or newer (e.g. '15' or '15.8')")
        return value

    @property
    def major_version(self) -> str:
        return self.engine_version.split(".", 1)[0]

    @property
    def parameter_group_family(self) -> str:
        """The RDS parameter group family of this engine version (``postgres16`` for '16.4')."""
        return f"postgres{self.major_version}"

    @field_validator("username")
    @classmethod
    def _user(cls, value: str) -> str:
        if not _PG_IDENT.match(value) or value in _PG_RESERVED_USERS:
            raise ValueError(f"master username {value!r} is reserved or invalid: use e.g. 'app_admin'")
        return value


class Objectives(_Camel):
    """Recovery objectives, e.g. from the 99.9 % SLA (8.76 h downtime a year)."""

    rto_seconds: Annotated[float, Field(gt=0)] = 900
    rpo_seconds: Annotated[float, Field(ge=0)] = 5


class Readiness(_Camel):
    """Continuous readiness (``app.readiness``): the DR stack runs ``dr readiness --publish`` on a
    schedule and alarms on the metrics (docs/status-readiness.md)."""

    # CloudWatch namespace of the metrics (``dr readiness --publish`` and the alarms).
    namespace: str = "dr/readiness"
    # EventBridge schedule of the DR region's run: every N minutes (also the alarms' period).
    schedule_minutes: Annotated[int, Field(ge=1, le=1440)] = 5
    # SNS topic (name, created by the DR stack) the alarms notify; default ``<app>-dr-readiness``.
    alarm_topic: str | None = None
    # Alarm when the newest recovery point in DR (snapshot or replicated backup) is older.
    recovery_point_budget_seconds: Annotated[float, Field(gt=0)] = 86400
    # Container image (ECR URI) of the dr toolkit the scheduled Lambda runs; none: no schedule
    # is deployed (the alarms and the topic are), and readiness is published from CI instead.
    image: str | None = None

    @field_validator("namespace")
    @classmethod
    def _ns(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9._/#:-]{1,255}$", value) or value.startswith("AWS/"):
            raise ValueError(
                f"readiness namespace {value!r}: 1-255 of letters, digits, . _ / # : -, not starting AWS/"
            )
        return value

    @field_validator("alarm_topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9_-]{1,256}$", value):
            raise ValueError(f"alarmTopic {value!r}: an SNS topic name (1-256 letters, digits, '-', '_')")
        return value


class Escalation(_Camel):
    level: str
    contact: str
    after_minutes: Annotated[int, Field(ge=0)] = 0


class App(_Camel):
    name: str
    namespace: str
    domain: str
    record: str
    health_path: str = "/health"
    ttl: Annotated[int, Field(ge=1)] = 60
    deployments: Annotated[list[Deployment], Field(min_length=1)]
    config_map: str
    feature_flags: dict[str, str] = Field(default_factory=dict)
    db_secret: DbSecret
    hpa: Hpa | None = None
    database: DatabaseApp
    objectives: Objectives = Field(default_factory=Objectives)
    readiness: Readiness = Field(default_factory=Readiness)
    escalation: list[Escalation] = Field(default_factory=list)
    status_page: str | None = None
    incident_webhook_url: str | None = None
    lock_table: str | None = None
    journal_bucket_prefix: str | None = None

    _n = field_validator("name")(_check(_K8S_NAME, "app name", "lowercase letters, digits and '-'"))
    _ns = field_validator("namespace")(_check(_K8S_NAME, "namespace", "DNS-1123 label"))
    _cm = field_validator("config_map")(_check(_K8S_NAME, "ConfigMap name", "DNS-1123 label"))
    _zone = field_validator("domain", "record")(
        _check(_DNS_NAME, "DNS name", "lowercase labels separated by dots, e.g. api.example.com")
    )

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: int) -> int:
        if value > 60:
            raise ValueError(
                f"ttl {value}s is too long for failover records: resolvers would keep the dead region "
                "for longer than the RTO allows; use 60 or less"
            )
        return value

    @field_validator("health_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or " " in value:
            raise ValueError(f"health path {value!r} must start with '/' and contain no spaces")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> App:
        if self.record != self.domain and not self.record.endswith("." + self.domain):
            raise ValueError(f"record {self.record!r} is not inside the zone {self.domain!r}")
        names = [d.name for d in self.deployments]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"deployment names are duplicated: {sorted(dupes)}")
        if self.hpa and self.hpa.deployment not in names:
            raise ValueError(f"hpa.deployment {self.hpa.deployment!r} is not one of the deployments {names}")
        if not any(d.serves_traffic for d in self.deployments):
            raise ValueError("no deployment has servesTraffic: true; mark the one behind the ALB")
        return self

    def deployment(self, name: str) -> Deployment:
        for dep in self.deployments:
            if dep.name == name or dep.name == f"{self.name}-{name}":
                return dep
        raise KeyError(name)

    @property
    def api(self) -> Deployment:
        return next(d for d in self.deployments if d.serves_traffic)

    @property
    def writers(self) -> list[Deployment]:
        return [d for d in self.deployments if d.writes_to_database]


# ---------------------------------------------------------------------------------------------
# Per-region settings (one per stack file)
# ---------------------------------------------------------------------------------------------


class Nodegroup(_Camel):
    name: str = "primary"
    min_size: Annotated[int, Field(ge=0, le=450)]
    max_size: Annotated[int, Field(ge=1, le=450)]
    desired_size: Annotated[int, Field(ge=0, le=450)]
    instance_types: list[str] = Field(default_factory=lambda: ["m6i.xlarge"])
    # Pods of the workload one node holds; with desired size it bounds what can become Ready.
    pods_per_node: Annotated[int, Field(ge=1)] = 4

    @model_validator(mode="after")
    def _bounds(self) -> Nodegroup:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"nodegroup {self.name!r}: need minSize <= desiredSize <= maxSize, got "
                f"{self.min_size}/{self.desired_size}/{self.max_size}"
            )
        return self


class Cluster(_Camel):
    name: str
    version: str = "1.31"
    nodegroup: Nodegroup

    _n = field_validator("name")(
        _check(_EKS_NAME, "EKS cluster name", "letters, digits, '-' and '_', starting alphanumeric")
    )

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.match(r"^1\.(2[89]|3\d)$", value):
            raise ValueError(f"EKS version {value!r} is not a supported 1.x minor (1.28 … 1.39)")
        return value


class Database(_Camel):
    identifier: str
    instance_class: str = "db.r6g.large"
    allocated_storage: Annotated[int, Field(ge=20, le=65536)] = 100
    multi_az: bool = True
    backup_retention_days: Annotated[int, Field(ge=0, le=35)] = 7
    deletion_protection: bool = True
    # Default: derived from app.database.engineVersion (``postgres<major>``); see
    # :meth:`Estate.parameter_group_family`. When given, it must match that major version.
    parameter_group_family: str | None = None

    _id = field_validator("identifier")(
        _check(
            _RDS_ID,
            "RDS DB instance identifier",
            "1-63 letters, digits or hyphens, starting with a letter, no '--', not ending in '-'",
        )
    )

    @field_validator("instance_class")
    @classmethod
    def _class(cls, value: str) -> str:
        if not re.match(r"^db\.[a-z0-9]+\.[a-z0-9]+$", value):
            raise ValueError(f"instance class {value!r} is not an RDS class such as 'db.r6g.large'")
        return value


class Cache(_Camel):
    replication_group_id: str
    node_type: str = "cache.r6g.large"
    num_cache_clusters: Annotated[int, Field(ge=1, le=6)] = 3
    engine_version: str = "7.1"
    snapshot_retention_days: Annotated[int, Field(ge=0, le=35)] = 7
    port: Annotated[int, Field(ge=1024, le=65535)] = 6379

    _id = field_validator("replication_group_id")(
        _check(_CACHE_ID, "ElastiCache replication group id", "1-40 lowercase letters, digits, '-'")
    )

    @model_validator(mode="after")
    def _failover(self) -> Cache:
        if self.num_cache_clusters < 2:
            raise ValueError(
                "numCacheClusters must be at least 2: automatic failover and Multi-AZ need a replica"
            )
        return self


class Edge(_Camel):
    alb_name: str
    target_group_name: str
    web_acl_name: str
    ip_set_name: str = "malicious-ips"
    blocked_addresses: list[str] = Field(default_factory=list)
    rate_limit: Annotated[int, Field(ge=10, le=2_000_000_000)] = 2000
    certificate_domain: str | None = None

    _alb = field_validator("alb_name", "target_group_name")(
        _check(_ELB_NAME, "load balancer / target group name", "1-32 alphanumerics or '-', not at the ends")
    )
    _waf = field_validator("web_acl_name", "ip_set_name")(
        _check(_WAF_NAME, "WAF name", "1-128 letters, digits, '_' or '-'")
    )

    @field_validator("blocked_addresses")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=True)
            except ValueError as exc:
                raise ValueError(
                    f"blocked address {value!r} is not a CIDR such as 203.0.113.0/24: {exc}"
                ) from exc
            if "/" not in value:
                raise ValueError(f"blocked address {value!r} needs a prefix length, e.g. {value}/32")
        return values


class Site(_Camel):
    """One region of the estate (one Pulumi stack)."""

    name: str
    vpc_cidr: str = "10.0.0.0/16"
    az_count: Annotated[int, Field(ge=2, le=6)] = 3
    cluster: Cluster
    database: Database
    cache: Cache
    edge: Edge
    # Per-deployment replica counts while this site is standby (warm standby); missing = production.
    standby_replicas: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)

    _n = field_validator("name")(_check(_K8S_NAME, "site name", "lowercase letters, digits and '-'"))

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"vpcCidr {value!r} is not an IPv4 CIDR: {exc}") from exc
        if not 16 <= net.prefixlen <= 24:
            raise ValueError(f"vpcCidr {value!r}: a VPC must be between /16 and /24")
        return value


Role = Literal["primary", "standby"]


class StackConfig(_Model):
    """One stack file, after parsing."""

    stack: str
    path: str
    region: str
    role: Role
    peer_stack: str
    app: App
    site: Site
    # Pulumi StackReference name of the primary stack (standby stacks only), e.g. org/dr-toolkit/prod.
    primary_stack_ref: str | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in AWS_REGIONS:
            raise ValueError(f"{value!r} is not an AWS region (e.g. us-west-2, us-east-1, eu-west-1)")
        return value

    @model_validator(mode="after")
    def _family(self) -> StackConfig:
        declared, derived = (
            self.site.database.parameter_group_family,
            self.app.database.parameter_group_family,
        )
        if declared is not None and declared != derived:
            raise ValueError(
                f"site.database.parameterGroupFamily {declared!r} does not match app.database.engineVersion "
                f"{self.app.database.engine_version!r} (family {derived!r}); remove the key to derive it"
            )
        return self


class SiteView(_Model):
    """A site with its region and stack: what procedures mostly need."""

    stack: str
    region: str
    role: Role
    site: Site

    @property
    def cluster(self) -> Cluster:
        return self.site.cluster

    @property
    def database(self) -> Database:
        return self.site.database

    @property
    def cache(self) -> Cache:
        return self.site.cache

    @property
    def edge(self) -> Edge:
        return self.site.edge


class Estate(_Model):
    app: App
    primary: SiteView
    secondary: SiteView
    stack_dir: str

    # -- lookup ---------------------------------------------------------------------------------
    def site(self, which: str) -> SiteView:
        """Resolve 'primary' / 'secondary' / a region / a stack name to a site."""
        for view in (self.primary, self.secondary):
            if which in (view.region, view.stack, view.site.name):
                return view
        if which in ("primary", "prod"):
            return self.primary
        if which in ("secondary", "standby", "dr"):
            return self.secondary
        raise ConfigError(
            f"{which!r} is neither 'primary'/'secondary' nor a region or stack of this estate "
            f"({self.primary.region}/{self.primary.stack}, {self.secondary.region}/{self.secondary.stack})"
        )

    def other(self, view: SiteView) -> SiteView:
        return self.secondary if view.region == self.primary.region else self.primary

    @property
    def regions(self) -> tuple[str, str]:
        return (self.primary.region, self.secondary.region)

    # -- derived physical names (shared by the Pulumi program, the CLI and the sandbox) -------
    @property
    def lock_table(self) -> str:
        return self.app.lock_table or f"{self.app.name}-dr-lock"

    def journal_bucket(self, region: str) -> str:
        prefix = self.app.journal_bucket_prefix or f"{self.app.name}-dr-journal"
        return f"{prefix}-{region}"

    @property
    def readiness_topic(self) -> str:
        """The SNS topic the readiness alarms notify (created by the standby stack)."""
        return self.app.readiness.alarm_topic or f"{self.app.name}-dr-readiness"

    def db_subnet_group(self, view: SiteView) -> str:
        return f"{view.site.name}-db"

    def cache_subnet_group(self, view: SiteView) -> str:
        return f"{view.site.name}-cache"

    def db_security_group(self, view: SiteView) -> str:
        """The ``Name`` tag of the site's database security group (its EC2 name is generated)."""
        return f"{view.site.name}-database"

    def kms_alias(self, view: SiteView) -> str:
        return f"alias/{view.site.name}-data"

    def health_check_ref(self, view: SiteView) -> str:
        return f"{view.site.name}-health"

    @property
    def parameter_group_family(self) -> str:
        """The DB parameter group family both sites use: derived from ``app.database.engineVersion``
        (a declared ``site.database.parameterGroupFamily`` is validated to equal it)."""
        return self.app.database.parameter_group_family

    def replica_count(self, view: SiteView, deployment: Deployment) -> int:
        if view.role == "standby":
            return view.site.standby_replicas.get(deployment.name, deployment.replicas)
        return deployment.replicas

    def physical_names(self) -> dict[str, set[str]]:
        """Every physical name the estate declares, by kind — the contract with the sandbox."""
        names: dict[str, set[str]] = {
            "eks_cluster": set(),
            "eks_nodegroup": set(),
            "rds_instance": set(),
            "elasticache_replication_group": set(),
            "alb": set(),
            "target_group": set(),
            "wafv2_web_acl": set(),
            "wafv2_ip_set": set(),
            "route53_zone": {self.app.domain},
            "route53_record": {self.app.record},
            "route53_health_check": set(),
            "secretsmanager_secret": set(),
            "dynamodb_table": {self.lock_table},
            "s3_bucket": set(),
        }
        for view in (self.primary, self.secondary):
            region, s = view.region, view.site
            names["eks_cluster"].add(f"{region}/{s.cluster.name}")
            names["eks_nodegroup"].add(f"{region}/{s.cluster.name}/{s.cluster.nodegroup.name}")
            names["rds_instance"].add(f"{region}/{s.database.identifier}")
            names["elasticache_replication_group"].add(f"{region}/{s.cache.replication_group_id}")
            names["alb"].add(f"{region}/{s.edge.alb_name}")
            names["target_group"].add(f"{region}/{s.edge.target_group_name}")
            names["wafv2_web_acl"].add(f"{region}/{s.edge.web_acl_name}")
            names["wafv2_ip_set"].add(f"{region}/{s.edge.ip_set_name}")
            names["route53_health_check"].add(self.health_check_ref(view))
            names["secretsmanager_secret"].add(f"{region}/{self.app.db_secret.secrets_manager_id}")
            names["s3_bucket"].add(self.journal_bucket(region))
        return names


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def stack_config_dir(project_dir: Path | str = ".") -> Path:
    """Where Pulumi reads this project's stack files: ``stackConfigDir`` of ``Pulumi.yaml``
    (relative to the project directory), the project directory itself when unset (Pulumi's rule)."""
    root = Path(project_dir)
    for name in ("Pulumi.yaml", "Pulumi.yml"):
        project = root / name
        if project.is_file():
            try:
                doc = yaml.safe_load(project.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{project} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
            configured = doc.get("stackConfigDir") if isinstance(doc, dict) else None
            return root / str(configured) if configured else root
    return root


def stack_file(stack_dir: Path, stack: str) -> Path:
    return Path(stack_dir) / f"Pulumi.{stack}.yaml"


def _format_validation(err: ValidationError, path: str, prefix: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p != "__root__")
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "is required but missing; add it to the stack file"
        elif e["type"] == "extra_forbidden":
            msg = "is not a known setting (typo?); remove or rename it"
        lines.append(f"  {key}: {msg}")
    return f"invalid stack file {path}:\n" + "\n".join(lines)


def parse_stack(raw: dict[str, Any], stack: str, path: str) -> StackConfig:
    """Validate one stack file's ``config`` mapping (also used by ``__main__.py`` via pulumi.Config)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid stack file {path}: the top-level 'config' must be a mapping")
    missing = [
        k for k in ("aws:region", NS + "role", NS + "peerStack", NS + "app", NS + "site") if k not in raw
    ]
    if missing:
        raise ConfigError(
            f"invalid stack file {path}: missing key(s) {', '.join(missing)} under 'config'; "
            "see docs/estate.md, or write a pair with `dr topology init`"
        )
    known = {NS + k for k in ("role", "peerStack", "app", "site", "primaryStackRef")}
    unknown = sorted(k for k in raw if k.startswith(NS) and k not in known)
    if unknown:
        raise ConfigError(
            f"invalid stack file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known keys are {', '.join(sorted(known))}"
        )
    data = {
        "stack": stack,
        "path": path,
        "region": raw["aws:region"],
        "role": raw[NS + "role"],
        "peer_stack": raw[NS + "peerStack"],
        "app": raw[NS + "app"],
        "site": raw[NS + "site"],
        "primary_stack_ref": raw.get(NS + "primaryStackRef"),
    }
    try:
        return StackConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation(err, path, "")) from None


def read_stack(stack_dir: Path | str, stack: str) -> StackConfig:
    path = stack_file(Path(stack_dir), stack)
    if not path.exists():
        available = stack_names(stack_dir)
        raise ConfigError(
            f"unknown stack {stack!r}: {path} does not exist"
            + (
                f" (stacks in {stack_dir}: {', '.join(available)})"
                if available
                else f" and {stack_dir} holds no stack files"
            )
            + "; pass --stack-dir/--stack or create the file"
        )
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"invalid stack file {path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(doc, dict) or "config" not in doc:
        raise ConfigError(f"invalid stack file {path}: expected a top-level 'config:' mapping")
    return parse_stack(doc["config"], stack, str(path))


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if a == b else [f"{prefix}: {a!r} != {b!r}"]


def combine(first: StackConfig, second: StackConfig, stack_dir: str) -> Estate:
    """Pair two stack files into an estate, checking they describe the same app in two regions."""
    if first.peer_stack != second.stack or second.peer_stack != first.stack:
        raise ConfigError(
            f"stacks {first.stack!r} and {second.stack!r} do not name each other as peerStack "
            f"({first.path}: {first.peer_stack!r}, {second.path}: {second.peer_stack!r})"
        )
    roles = {first.role, second.role}
    if roles != {"primary", "standby"}:
        raise ConfigError(
            f"{first.path} and {second.path} are both role {first.role!r}: "
            "set dr-toolkit:role to 'primary' in one and 'standby' in the other"
        )
    primary, secondary = (first, second) if first.role == "primary" else (second, first)
    if primary.region == secondary.region:
        raise ConfigError(
            f"{primary.path} and {secondary.path} are both in {primary.region}: the DR site must be in "
            "another region (set aws:region in the standby stack)"
        )
    diffs = _diff(primary.app.model_dump(by_alias=True), secondary.app.model_dump(by_alias=True))
    if diffs:
        raise ConfigError(
            f"dr-toolkit:app differs between {primary.path} and {secondary.path}; make them identical:\n  "
            + "\n  ".join(f"app.{d}" for d in diffs)
        )
    for key in ("name",):
        if getattr(primary.site, key) == getattr(secondary.site, key):
            raise ConfigError(
                f"site.{key} {getattr(primary.site, key)!r} is the same in {primary.path} and {secondary.path}; "
                "each region needs its own"
            )
    return Estate(
        app=primary.app,
        primary=SiteView(stack=primary.stack, region=primary.region, role="primary", site=primary.site),
        secondary=SiteView(
            stack=secondary.stack, region=secondary.region, role="standby", site=secondary.site
        ),
        stack_dir=str(stack_dir),
    )


def stack_names(stack_dir: Path | str) -> list[str]:
    """The stacks ``stack_dir`` holds a ``Pulumi.<stack>.yaml`` for, sorted."""
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in Path(stack_dir).glob("Pulumi.*.yaml")
    )


def primary_stacks(stack_dir: Path | str) -> list[str]:
    """The stacks of ``stack_dir`` whose file declares ``dr-toolkit:role: primary`` (a file that
    does not parse is no candidate: naming it with --stack reports its error)."""
    found = []
    for stack in stack_names(stack_dir):
        try:
            doc = yaml.safe_load(stack_file(Path(stack_dir), stack).read_text())
        except (OSError, yaml.YAMLError):
            continue
        config = doc.get("config") if isinstance(doc, dict) else None
        if isinstance(config, dict) and config.get(NS + "role") == "primary":
            found.append(stack)
    return found


def default_stack(stack_dir: Path | str) -> str:
    """The stack to load when none is named: ``$PULUMI_STACK`` when set, else the one stack of
    ``stack_dir`` declaring ``role: primary``. Several (or none): a ConfigError (exit 2) naming
    the candidates, so nothing runs against a guessed estate."""
    import os

    env = os.environ.get("PULUMI_STACK", "").strip()
    if env:
        return env.rsplit("/", 1)[-1]  # org/project/stack names the same file
    primaries = primary_stacks(stack_dir)
    if len(primaries) == 1:
        return primaries[0]
    if primaries:
        raise ConfigError(
            f"{stack_dir} holds {len(primaries)} primary stacks ({', '.join(primaries)}): "
            "which estate is meant is ambiguous",
            resource=str(stack_dir),
            hint=f"pass --stack (one of {', '.join(primaries)}) or set DR_STACK / PULUMI_STACK",
        )
    available = stack_names(stack_dir)
    for stack in available:
        # A file that does not parse may be the primary: its own error (file, line) is the answer.
        try:
            yaml.safe_load(stack_file(Path(stack_dir), stack).read_text())
        except (OSError, yaml.YAMLError):
            read_stack(stack_dir, stack)
    raise ConfigError(
        f"{stack_dir} holds no primary stack file"
        + (f" (stacks: {', '.join(available)}, none with dr-toolkit:role: primary)" if available else ""),
        resource=str(stack_dir),
        hint="pass --stack-dir (the directory of your Pulumi.<stack>.yaml files) or create a pair "
        "with `dr topology init`",
    )


def load_estate(stack_dir: Path | str = "stacks", stack: str | None = None) -> Estate:
    """Load ``stack`` (default: :func:`default_stack`) and its peer from ``stack_dir``."""
    first = read_stack(stack_dir, stack or default_stack(stack_dir))
    second = read_stack(stack_dir, first.peer_stack)
    return combine(first, second, str(stack_dir))
