"""A commented pair of stack files (primary + DR) for a new estate: what ``dr topology init`` writes.

:func:`render_pair` returns ``{file name: YAML text}``; every value is derived from the app name,
the two regions and the PostgreSQL major version, and the pair is validated with
:func:`dr.topology.combine` before anything is written, so a generated estate always loads.
Names follow the AWS rules of :mod:`dr.topology` (docs/estate.md lists them).
"""

from __future__ import annotations

from pathlib import Path

from dr.errors import ConfigError

_PRIMARY = """\
# Primary region of {app} ({primary_region}); the DR half is Pulumi.{dr_stack}.yaml.
# Read by `pulumi up --stack {primary_stack}` and, as plain YAML, by the `dr` CLI and the sandbox.
# Every key is explained in docs/estate.md; `dr topology schema` prints the JSON Schema for editors.
config:
  aws:region: {primary_region}
  dr-toolkit:role: primary              # primary | standby: exactly one of each in the pair
  dr-toolkit:peerStack: {dr_stack}            # the other half of the pair
  dr-toolkit:app:                       # app-wide: identical in both files (checked)
{app_block}
  dr-toolkit:site:                      # this region's resources (physical names must be unique)
{primary_site}
"""

_STANDBY = """\
# Warm-standby (DR) region of {app} ({dr_region}): small nodegroup, one API pod, a cross-region
# read replica of the primary database, until `dr failover` scales it to production.
config:
  aws:region: {dr_region}
  dr-toolkit:role: standby
  dr-toolkit:peerStack: {primary_stack}
  # Pulumi StackReference (org/project/stack) of the primary, for the replica's source ARN.
  dr-toolkit:primaryStackRef: organization/dr-toolkit/{primary_stack}
  dr-toolkit:app:                       # identical to Pulumi.{primary_stack}.yaml (checked)
{app_block}
  dr-toolkit:site:
{standby_site}
"""

_APP = """\
    name: {app}                          # Kubernetes-style name: lowercase letters, digits, '-'
    namespace: {app}
    domain: {domain}                     # the Route53 hosted zone
    record: api.{domain}                 # the failover record clients use
    healthPath: {health_path}                     # what Route53 health checks and drills probe
    ttl: 60                              # ≤ 60 s, or resolvers keep the lost region too long
    deployments:
      - name: {app}-api
        replicas: 3
        image: nginx:1.27
        port: 8080
        writesToDatabase: true           # scaled to 0 by `stop-writes` and planned failovers
        servesTraffic: true              # exactly this deployment backs the ALB and /health
    configMap: {app}-config
    dbSecret:
      name: {app}-db-secret              # Kubernetes secret holding the database URL
      key: database-url
      secretsManagerId: {app}/database   # Secrets Manager secret with the master credentials
    database:
      engineVersion: "{engine_version}"                # PostgreSQL 15 or newer; parameter group family postgres{major}
      dbName: {db_name}
      username: app_admin                # not a reserved name (postgres, admin, rdsadmin, ...)
    objectives:
      rtoSeconds: 900                    # drills fail when recovery takes longer
      rpoSeconds: 5                      # lag budget of planned failovers and drill probes"""

_SITE = """\
    name: {site}
    vpcCidr: {cidr}
    azCount: {az_count}                          # zones are read from the region, never guessed
    cluster:
      name: {site}
      version: "1.31"
      nodegroup:
        name: primary
        minSize: {min_size}
        maxSize: 10
        desiredSize: {desired}
    database:
      identifier: {db_id}              # RDS: letter first, letters/digits/'-', no '--', ≤ 63
      instanceClass: db.r6g.large
      multiAz: true
      backupRetentionDays: 7
    cache:
      replicationGroupId: {site}-redis   # ElastiCache: lowercase, ≤ 40
      numCacheClusters: 2
    edge:
      albName: {alb}                     # ALB / target group: ≤ 32 characters
      targetGroupName: {tg}
      webAclName: {site}-waf"""

# Regions with only two zones a new account can use (the sandbox and Pulumi read the real list).
_TWO_ZONE_REGIONS = frozenset({"us-west-1"})


def _short(name: str, suffix: str, limit: int) -> str:
    """``name-suffix`` cut so it fits ``limit`` characters (ALB/target group: 32), no '-' at the ends."""
    head = name[: max(1, limit - len(suffix) - 1)].rstrip("-")
    return f"{head}-{suffix}"


def render_pair(
    app: str,
    primary_region: str,
    dr_region: str,
    *,
    engine_version: str = "16",
    primary_stack: str | None = None,
    dr_stack: str | None = None,
    domain: str | None = None,
    health_path: str = "/health",
) -> dict[str, str]:
    """``{"Pulumi.<stack>.yaml": text}`` for the primary and DR stacks (validated, see module doc)."""
    from dr.topology import combine, parse_stack

    primary_stack = primary_stack or f"{app}-{primary_region}"
    dr_stack = dr_stack or f"{app}-{dr_region}"
    domain = domain or f"{app}.example.com"
    values = {
        "app": app,
        "domain": domain,
        "health_path": health_path,
        "engine_version": engine_version,
        "major": engine_version.split(".", 1)[0],
        "db_name": app.replace("-", "_"),
        "primary_region": primary_region,
        "dr_region": dr_region,
        "primary_stack": primary_stack,
        "dr_stack": dr_stack,
    }
    app_block = _APP.format(**values)

    def site(role: str, region: str, cidr: str) -> str:
        name = f"{app}-{'prod' if role == 'primary' else 'dr'}"
        return _SITE.format(
            site=name,
            cidr=cidr,
            az_count=2 if region in _TWO_ZONE_REGIONS else 3,
            min_size=2 if role == "primary" else 1,
            desired=3 if role == "primary" else 1,
            db_id=f"{app}-{'primary' if role == 'primary' else 'replica'}",
            alb=_short(name, "alb", 32),
            tg=_short(name, "api", 32),
        )

    standby_site = (
        site("standby", dr_region, "10.1.0.0/16")
        + "\n    standbyReplicas:\n      "
        + (f"{app}-api: 1                  # warm standby: one API pod until a failover")
    )
    files = {
        f"Pulumi.{primary_stack}.yaml": _PRIMARY.format(
            **values, app_block=app_block, primary_site=site("primary", primary_region, "10.0.0.0/16")
        ),
        f"Pulumi.{dr_stack}.yaml": _STANDBY.format(**values, app_block=app_block, standby_site=standby_site),
    }
    import yaml

    parsed = [
        parse_stack(yaml.safe_load(text)["config"], name.removeprefix("Pulumi.").removesuffix(".yaml"), name)
        for name, text in files.items()
    ]
    combine(parsed[0], parsed[1], ".")
    return files


def write_pair(directory: Path, files: dict[str, str], *, force: bool = False) -> list[Path]:
    """Write the files into ``directory`` (created); refuses to overwrite unless ``force``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / name for name in files]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{', '.join(existing)} already exist(s): nothing was written",
            resource=existing[0],
            hint="choose another --dir, or pass --force to overwrite",
        )
    for path in paths:
        path.write_text(files[path.name])
    return paths
