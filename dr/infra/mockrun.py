"""Run the Pulumi program for a stack under ``pulumi.runtime.set_mocks`` — no Pulumi CLI, no AWS.

``run_stack(stack_dir, stack)`` executes ``__main__.py`` in-process with the stack file's config
and returns every declared resource (type token, logical name, URN, parent, physical name,
inputs) plus the stack outputs. Pulumi keeps its runtime state in context variables, so
``run_isolated`` runs a stack in a fresh ``contextvars.Context`` and ``run_many_subprocess`` runs
several stacks that way in one ``python -m dr.infra.mockrun --jobs ...`` subprocess (keeping the
mocks and Pulumi's event loop out of the caller). ``physical_names(runs)`` groups what the program declares exactly like
``dr.topology.Estate.physical_names()`` — the contract with the sandbox.

Secret inputs are redacted to ``{"__secret__": "<sha256 of the value>"}``, so a password that
reaches the output (or a test scanning it) in clear text was NOT marked secret by the program.
"""

from __future__ import annotations

import argparse
import contextvars
import hashlib
import json
import os
import runpy
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dr import topology
from dr.topology import NS, StackConfig, read_stack

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "__main__.py"
PROJECT = "dr-toolkit"
ACCOUNT = "123456789012"
# The current password of the mocked app secret (a rotation happened), and the random password
# Pulumi generated for its first version: neither may appear unredacted in any input.
MOCK_PASSWORD = "Mock-rotated-pw-9f2c41"
MOCK_INITIAL_PASSWORD = "Mock-initial-pw-5e07ab"
SECRET_KEY = "__secret__"


# -- deterministic fake identifiers (shared by the mocks and by StackReference outputs) -------
def _h(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def rds_arn(region: str, identifier: str) -> str:
    return f"arn:aws:rds:{region}:{ACCOUNT}:db:{identifier}"


def rds_master_secret_arn(region: str, identifier: str) -> str:
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:rds!db-{_h(identifier)}-{_h(region, 6)}"


def secret_arn(region: str, name: str) -> str:
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}-{_h(name, 6)}"


def zone_id(domain: str) -> str:
    return "Z" + _h(domain, 12).upper()


def lock_table_arn(region: str, name: str) -> str:
    return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"


def referenced_outputs(primary: StackConfig) -> dict[str, Any]:
    """The outputs a StackReference to ``primary``'s stack sees (its exports, mocked)."""
    from dr.infra._common import lock_table

    return {
        "dbArn": rds_arn(primary.region, primary.site.database.identifier),
        "region": primary.region,
        "zoneId": zone_id(primary.app.domain),
        "lockTableArn": lock_table_arn(primary.region, lock_table(primary.app)),
    }


# -- results --------------------------------------------------------------------------------
@dataclass
class Declared:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    region: str | None
    physical: str | None
    inputs: dict[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    provider: str = ""
    ignore_changes: list[str] = field(default_factory=list)


@dataclass
class MockRun:
    stack: str
    region: str
    role: str
    resources: list[Declared]
    outputs: dict[str, Any] = field(default_factory=dict)
    # Every invoke the program made: {"token", "region" (the invoke's, else the stack's), "args"}.
    invokes: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Declared:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            raise LookupError(f"{self.stack}: expected one {type_} {name or ''}, found {len(found)}")
        return found[0]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MockRun:
        data = dict(data)
        data["resources"] = [Declared(**r) for r in data["resources"]]
        return cls(**data)


def _jsonable(value: Any) -> Any:
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        inner = json.dumps(_jsonable(rpc.unwrap_rpc_secret(value)), sort_keys=True, default=str)
        return {SECRET_KEY: hashlib.sha256(inner.encode()).hexdigest()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def secret_digest(value: Any) -> str:
    """The digest ``_jsonable`` writes for a secret holding ``value``."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# Physical name of each named AWS type: (kind in Estate.physical_names(), input key, regional?)
PHYSICAL: dict[str, tuple[str, str, bool]] = {
    "aws:eks/cluster:Cluster": ("eks_cluster", "name", True),
    "aws:eks/nodeGroup:NodeGroup": ("eks_nodegroup", "nodeGroupName", True),
    "aws:rds/instance:Instance": ("rds_instance", "identifier", True),
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "elasticache_replication_group",
        "replicationGroupId",
        True,
    ),
    "aws:lb/loadBalancer:LoadBalancer": ("alb", "name", True),
    "aws:lb/targetGroup:TargetGroup": ("target_group", "name", True),
    "aws:wafv2/webAcl:WebAcl": ("wafv2_web_acl", "name", True),
    "aws:wafv2/ipSet:IpSet": ("wafv2_ip_set", "name", True),
    "aws:route53/zone:Zone": ("route53_zone", "name", False),
    "aws:route53/healthCheck:HealthCheck": ("route53_health_check", "tags.Name", False),
    "aws:secretsmanager/secret:Secret": ("secretsmanager_secret", "name", True),
    "aws:dynamodb/table:Table": ("dynamodb_table", "name", False),
    "aws:s3/bucket:Bucket": ("s3_bucket", "bucket", False),
}


SECRET = "aws:secretsmanager/secret:Secret"


def _physical(type_: str, inputs: dict[str, Any]) -> str | None:
    if type_ == "aws:eks/nodeGroup:NodeGroup":
        return f"{inputs.get('clusterName')}/{inputs.get('nodeGroupName')}"
    if type_ == "aws:route53/record:Record":
        return inputs.get("name")
    if type_ == "aws:route53/healthCheck:HealthCheck":
        # Health checks have no name: the Name tag carries the topology's reference (the
        # caller-reference prefix is capped at 64 characters).
        tags = inputs.get("tags") or {}
        return tags.get("Name") or inputs.get("referenceName")
    if type_ == "aws:dynamodb/tableReplica:TableReplica":
        arn = str(inputs.get("globalTableArn", ""))
        return arn.rsplit("/", 1)[-1] or None
    spec = PHYSICAL.get(type_)
    return inputs.get(spec[1]) if spec else None


def physical_names(runs: list[MockRun]) -> dict[str, set[str]]:
    """What the program declares, in the shape of ``topology.Estate.physical_names()``."""
    out: dict[str, set[str]] = {kind: set() for kind, _, _ in PHYSICAL.values()}
    out["route53_record"] = set()
    for run in runs:
        for r in run.resources:
            if r.physical is None:
                continue
            if r.type == "aws:route53/record:Record":
                # Only the failover pair is the app's record; ACM validation CNAMEs are plumbing.
                if r.inputs.get("failoverRoutingPolicies"):
                    out["route53_record"].add(r.physical)
                continue
            if r.type == "aws:dynamodb/tableReplica:TableReplica":
                out["dynamodb_table"].add(r.physical)
                continue
            if r.type not in PHYSICAL:
                continue
            kind, _, regional = PHYSICAL[r.type]
            region = r.region or run.region
            out[kind].add(f"{region}/{r.physical}" if regional else r.physical)
            # A multi-region secret also exists, under its name, in each replica region.
            if r.type == SECRET:
                for replica in r.inputs.get("replicas") or []:
                    out[kind].add(f"{replica['region']}/{r.physical}")
    return out


# -- the mocks --------------------------------------------------------------------------------
def _make_mocks(cfg: StackConfig, stack_dir: Path, invokes: list[dict[str, Any]]) -> Any:
    import pulumi

    default_region = cfg.region

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
            from pulumi.runtime import rpc

            inputs = {k: rpc.unwrap_rpc_secret(v) for k, v in args.inputs.items()}
            region = inputs.get("region") or default_region
            state: dict[str, Any] = dict(args.inputs)
            typ, name = args.typ, args.name
            rid = f"{name}-{_h(typ + name)}"
            if typ == "pulumi:pulumi:StackReference":
                # "<org>/<project>/<stack>": serve that stack's exports, computed from its file.
                referenced = read_stack(stack_dir, str(inputs.get("name") or args.name).rsplit("/", 1)[-1])
                return args.resource_id or args.name, {
                    "name": inputs.get("name"),
                    "outputs": referenced_outputs(referenced),
                    "secretOutputNames": [],
                }
            if typ == "aws:rds/instance:Instance":
                ident = inputs["identifier"]
                rid = ident
                state.update(
                    arn=rds_arn(region, ident),
                    address=f"{ident}.c{_h(region, 10)}.{region}.rds.amazonaws.com",
                    endpoint=f"{ident}.c{_h(region, 10)}.{region}.rds.amazonaws.com:{int(inputs.get('port', 5432))}",
                    masterUserSecrets=(
                        [
                            {
                                "secretArn": rds_master_secret_arn(region, ident),
                                "secretStatus": "active",
                                "kmsKeyId": inputs.get("masterUserSecretKmsKeyId"),
                            }
                        ]
                        if inputs.get("manageMasterUserPassword")
                        else []
                    ),
                )
            elif typ == "aws:eks/cluster:Cluster":
                cname = inputs["name"]
                state.update(
                    arn=f"arn:aws:eks:{region}:{ACCOUNT}:cluster/{cname}",
                    endpoint=f"https://{_h(cname, 32).upper()}.gr7.{region}.eks.amazonaws.com",
                    certificateAuthority={"data": "bW9jay1jYQ=="},
                    vpcConfig={
                        **inputs.get("vpcConfig", {}),
                        "clusterSecurityGroupId": f"sg-{_h(cname, 17)}",
                    },
                )
            elif typ == "aws:eks/nodeGroup:NodeGroup":
                state.update(
                    arn=f"arn:aws:eks:{region}:{ACCOUNT}:nodegroup/{inputs.get('nodeGroupName')}",
                    resources=[
                        {"autoscalingGroups": [{"name": f"eks-{inputs.get('nodeGroupName')}-{_h(name)}"}]}
                    ],
                )
            elif typ == "aws:lb/loadBalancer:LoadBalancer":
                lname = inputs["name"]
                state.update(
                    arn=f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:loadbalancer/app/{lname}/{_h(lname, 16)}",
                    dnsName=f"{lname}-{int(_h(lname, 6), 16)}.{region}.elb.amazonaws.com",
                    zoneId="Z" + _h(region, 12).upper(),
                )
            elif typ == "aws:lb/targetGroup:TargetGroup":
                state["arn"] = (
                    f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:targetgroup/{inputs['name']}/{_h(name, 16)}"
                )
            elif typ in ("aws:wafv2/ipSet:IpSet", "aws:wafv2/webAcl:WebAcl"):
                kind = "ipset" if typ.endswith("IpSet") else "webacl"
                rid = _h(typ + inputs["name"], 32)
                state["arn"] = f"arn:aws:wafv2:{region}:{ACCOUNT}:regional/{kind}/{inputs['name']}/{rid}"
            elif typ == "aws:route53/zone:Zone":
                rid = zone_id(inputs["name"])
                state.update(zoneId=rid, nameServers=[f"ns-{i}.awsdns-mock.org" for i in range(4)])
            elif typ == "aws:route53/healthCheck:HealthCheck":
                rid = f"{_h(str(inputs.get('referenceName')), 8)}-hc"
            elif typ == "aws:route53/record:Record":
                state["fqdn"] = inputs.get("name")
            elif typ == "aws:acm/certificate:Certificate":
                domain = inputs["domainName"]
                state.update(
                    arn=f"arn:aws:acm:{region}:{ACCOUNT}:certificate/{_h(region + domain, 32)}",
                    domainValidationOptions=[
                        {
                            "domainName": domain,
                            "resourceRecordName": f"_{_h(domain, 16)}.{domain}.",
                            "resourceRecordType": "CNAME",
                            "resourceRecordValue": f"_{_h('v' + domain, 16)}.acm-validations.aws.",
                        }
                    ],
                )
            elif typ == "aws:kms/key:Key":
                rid = _h(region + name, 32)
                state.update(arn=f"arn:aws:kms:{region}:{ACCOUNT}:key/{rid}", keyId=rid)
            elif typ == "aws:secretsmanager/secret:Secret":
                state["arn"] = secret_arn(region, inputs["name"])
                rid = state["arn"]
            elif typ == "aws:elasticache/replicationGroup:ReplicationGroup":
                gid = inputs["replicationGroupId"]
                rid = gid
                state.update(
                    arn=f"arn:aws:elasticache:{region}:{ACCOUNT}:replicationgroup:{gid}",
                    primaryEndpointAddress=f"master.{gid}.{_h(gid, 6)}.{region}.cache.amazonaws.com",
                )
            elif typ == "aws:dynamodb/table:Table":
                rid = inputs["name"]
                state["arn"] = lock_table_arn(region, rid)
            elif typ == "aws:dynamodb/tableReplica:TableReplica":
                table = str(inputs.get("globalTableArn", "")).rsplit("/", 1)[-1]
                state["arn"] = lock_table_arn(region, table)
            elif typ == "aws:s3/bucket:Bucket":
                rid = inputs["bucket"]
                state["arn"] = f"arn:aws:s3:::{rid}"
            elif typ.startswith("aws:"):
                state.setdefault("arn", f"arn:aws:mock:{region}:{ACCOUNT}:{typ.split(':')[-1].lower()}/{rid}")
            return rid, state

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
            invokes.append(
                {
                    "token": args.token,
                    "region": args.args.get("region") or default_region,
                    "args": _jsonable(dict(args.args)),
                }
            )
            if args.token == "aws:secretsmanager/getRandomPassword:getRandomPassword":
                return {"randomPassword": MOCK_INITIAL_PASSWORD, "id": "mock"}
            if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
                region = args.args.get("region") or default_region
                names = [f"{region}{c}" for c in "abcdef"]
                return {"names": names, "zoneIds": [f"z-{n}" for n in names], "id": region}
            if args.token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
                secret_id = str(args.args.get("secretId", ""))
                region = args.args.get("region") or default_region
                # Real Secrets Manager only finds an ARN in the region the ARN names.
                if secret_id.startswith("arn:") and not secret_id.startswith(
                    f"arn:aws:secretsmanager:{region}:"
                ):
                    raise RuntimeError(f"ResourceNotFoundException: secret {secret_id!r} is not in {region}")
                arn = secret_id if secret_id.startswith("arn:") else secret_arn(region, secret_id)
                # The CURRENT version: a rotated password, not the one Pulumi generated initially.
                value = json.dumps({"username": "mockuser", "password": MOCK_PASSWORD})
                return {"arn": arn, "secretArn": arn, "secretString": value, "id": arn, "versionId": "v2"}
            return {}

    return Mocks()


def _config_values(raw: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def run_stack(stack_dir: Path | str, stack: str) -> MockRun:
    """Run ``__main__.py`` for ``stack`` under mocks in THIS process (once per process)."""
    import pulumi
    from pulumi.runtime import mocks as pmocks
    from pulumi.runtime import rpc, settings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    stack_dir = Path(stack_dir)
    cfg = read_stack(stack_dir, stack)
    raw = yaml.safe_load((stack_dir / f"Pulumi.{stack}.yaml").read_text())["config"]

    parents: dict[str, str] = {}
    custom: dict[str, bool] = {}
    declared_inputs: dict[str, dict[str, Any]] = {}
    flags: dict[str, tuple[bool, bool, str]] = {}
    ignored: dict[str, list[str]] = {}

    class Monitor(pmocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            resp = super().RegisterResource(request)
            parents[resp.urn] = request.parent
            declared_inputs[resp.urn] = rpc.deserialize_properties(request.object) or {}
            flags[resp.urn] = (bool(request.protect), bool(request.retainOnDelete), request.provider)
            ignored[resp.urn] = list(request.ignoreChanges)
            custom[resp.urn] = bool(request.custom)
            return resp

    invokes: list[dict[str, Any]] = []
    monitor = Monitor(_make_mocks(cfg, stack_dir, invokes))
    pmocks.set_mocks(
        monitor.mocks,
        project=PROJECT,
        stack=stack,
        preview=False,
        monitor=monitor,
        organization="organization",
    )
    set_all_config(_config_values(raw))

    def program() -> None:
        # The program reads the peer's stack file from Pulumi's stack config dir: here, stack_dir.
        saved = topology.stack_config_dir
        topology.stack_config_dir = lambda project_dir=".": stack_dir
        try:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        finally:
            topology.stack_config_dir = saved

    _sync_await(run_pulumi_func(program))
    root = settings.get_root_resource()
    exported = getattr(root, "outputs", {}) or {}
    outputs = _sync_await(pulumi.Output.from_input(exported).future(with_unknowns=True)) or {}
    # Secret-ness of stack outputs is not tracked here; the CLI-facing ids are not secrets.

    resources: list[Declared] = []
    for urn, _reg in monitor.resources.items():
        type_chain, name = urn.split("::")[-2], urn.split("::")[-1]
        typ = type_chain.split("$")[-1]
        if typ == "pulumi:pulumi:StackReference":
            continue
        inputs = _jsonable(dict(declared_inputs.get(urn, {})))
        region = inputs.get("region") if typ.startswith("aws:") else None
        resources.append(
            Declared(
                type=typ,
                name=name,
                urn=urn,
                parent=parents.get(urn, ""),
                custom=custom.get(urn, True),
                region=region or (cfg.region if typ.startswith("aws:") else None),
                physical=_physical(typ, inputs),
                inputs=inputs,
                protect=flags.get(urn, (False, False, ""))[0],
                retain_on_delete=flags.get(urn, (False, False, ""))[1],
                provider=flags.get(urn, (False, False, ""))[2],
                ignore_changes=ignored.get(urn, []),
            )
        )
    return MockRun(
        stack=stack,
        region=cfg.region,
        role=cfg.role,
        resources=resources,
        outputs=_jsonable(outputs),
        invokes=invokes,
    )


def run_isolated(stack_dir: Path | str, stack: str) -> MockRun:
    """``run_stack`` in a fresh ``contextvars.Context``: Pulumi keeps its settings, config and root
    resource in context variables, so several stacks can run one after the other in one process
    (the first pays the ~3 s of loading pulumi_aws classes, the next ones take < 1 s)."""
    return contextvars.Context().run(run_stack, stack_dir, stack)


def run_many_subprocess(jobs: dict[str, tuple[str, str]], timeout: float = 180) -> dict[str, MockRun]:
    """Run ``{key: (stack_dir, stack)}`` in ONE fresh interpreter, each stack in its own context.

    A subprocess keeps Pulumi's event loop and mocks out of the caller (e.g. a pytest worker).
    """
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dr.infra.mockrun",
            "--jobs",
            json.dumps({k: list(v) for k, v in jobs.items()}),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"pulumi program failed under mocks for {sorted(jobs)}:\n{proc.stderr.strip()[-4000:]}"
        )
    data = json.loads(proc.stdout)
    return {k: MockRun.from_json(v) for k, v in data.items()}


def run_stack_subprocess(stack_dir: Path | str, stack: str, timeout: float = 120) -> MockRun:
    """Run one stack in a fresh interpreter."""
    return run_many_subprocess({stack: (str(stack_dir), stack)}, timeout)[stack]


def run_stacks(stack_dir: Path | str, stacks: list[str] | None = None) -> dict[str, MockRun]:
    """Run several stacks of ``stack_dir`` (default: every stack file there) in one subprocess."""
    if stacks is None:
        stacks = sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml")
            for p in Path(stack_dir).glob("Pulumi.*.yaml")
        )
    return run_many_subprocess({s: (str(stack_dir), s) for s in stacks})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Pulumi program under mocks and print JSON")
    parser.add_argument("--stack-dir", default=str(ROOT / "stacks"))
    parser.add_argument("--stack", help="one stack: prints its MockRun")
    parser.add_argument("--jobs", help='JSON {"key": ["stack_dir", "stack"], ...}: prints {key: MockRun}')
    ns = parser.parse_args(argv)
    if ns.jobs:
        jobs = json.loads(ns.jobs)
        out = {key: run_isolated(d, s).to_json() for key, (d, s) in jobs.items()}
        json.dump(out, sys.stdout)
        return 0
    if not ns.stack:
        parser.error("give --stack or --jobs")
    json.dump(run_isolated(ns.stack_dir, ns.stack).to_json(), sys.stdout)
    return 0


__all__ = [
    "MOCK_INITIAL_PASSWORD",
    "MOCK_PASSWORD",
    "NS",
    "Declared",
    "MockRun",
    "physical_names",
    "run_isolated",
    "run_many_subprocess",
    "run_stack",
    "run_stack_subprocess",
    "run_stacks",
]

if __name__ == "__main__":
    raise SystemExit(main())
