"""R8: first contact with a real account — credential and permission errors, AWS-CLI grade.

No credentials, an unknown profile, an expired SSO session, expired tokens, AccessDenied /
UnauthorizedOperation, an opt-in region the account has not enabled, an endpoint that does not
answer: every case is a real ``dr`` process (forked, see zygote.py) that must exit 2 (the operator's
setup) or 3 (IAM refused) with ONE message naming the profile or region, the IAM action where there
is one, and what to run — never a traceback.

Credential cases run with ``--target aws`` and an AWS config of their own (nothing leaves the machine:
credentials are resolved before a request is signed). The others answer from the sandbox's realism
layer (``FaultRule("denied", code=...)``: the error as AWS spells it for that API family;
``"unreachable"``: connections dropped), on both estates — ours and ``examples/chess-ai/stacks``.

Mid-plan cases deny one call of a plan after earlier steps changed the estate: the run stops, its
journal records the step and the AWS error code, and after the fault is lifted ``--resume RUN_ID``
finishes it without repeating any change (the servers' own record of what they received and
accepted, received.py, has no key twice).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STACKS
from tests.reliability.harness import Estate, Result, running_estate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHESS = ROOT / "examples" / "chess-ai" / "stacks"
ESTATES = {"ours": STACKS, "chess": CHESS}

SSO_CONFIG = """\
[profile ops-sso]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = DrOperator
region = eu-west-1

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1
sso_registration_scopes = sso:account:access
"""


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    code: int  # 2 the operator's setup, 3 IAM refused
    says: tuple[str, ...]  # every one must appear in stderr (case-insensitive); {placeholders} allowed
    estate: str = "ours"
    # sandbox faults: FaultRule fields; "primary"/"secondary" as region mean the estate's regions
    faults: tuple[dict[str, Any], ...] = ()
    # --target aws with this AWS config file (None: a sandbox case)
    aws_config: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # an SSO token in the cache (~/.aws/sso/cache) of the SSO_CONFIG session that has expired
    sso_token_expired: bool = False
    # mid-plan: the step the run stops at; then the fault is lifted and the run resumed
    stops_at: str | None = None


def _cases() -> list[Case]:
    asl = ["failover", "--to", "secondary", "--export", "asl"]
    return [
        # -- credentials, profiles (--target aws, nothing sent) ------------------------------------
        Case("no-credentials-status", ["status"], 2, ("no AWS credentials", "aws configure sso", "needed for route53:"),
             aws_config=""),
        Case("no-credentials-export-asl", asl, 2, ("no AWS credentials", "aws sso login"), "chess",
             aws_config=""),
        Case("no-credentials-iam-policy-sts", ["iam-policy", "--procedure", "failback"], 2,
             ("no AWS credentials", "sts:GetCallerIdentity", "aws configure"), aws_config=""),
        Case("unknown-profile-flag", ["--profile", "nope", "failover", "--dry-run"], 2,
             ("'nope'", "aws configure sso --profile nope", "list-profiles"), aws_config=""),
        Case("unknown-profile-env", ["readiness"], 2, ("'ghost'", "--profile ghost"), "chess",
             aws_config="", env={"AWS_PROFILE": "ghost"}),
        Case("sso-session-expired", ["--profile", "ops-sso", "status"], 2,
             ("'ops-sso'", "sso session", "aws sso login --profile ops-sso"), "chess", aws_config=SSO_CONFIG),
        Case("sso-never-started-promote", ["--profile", "ops-sso", "promote", "--dry-run"], 2,
             ("aws sso login --profile ops-sso", "rds:"), aws_config=SSO_CONFIG),
        Case("sso-token-expired-failover-dry-run", ["--profile", "ops-sso", "failover", "--dry-run"], 2,
             ("'ops-sso'", "has expired", "TokenRetrievalError", "aws sso login --profile ops-sso"), "chess",
             aws_config=SSO_CONFIG, sso_token_expired=True),
        Case("profile-without-credentials", ["--profile", "half", "snapshot", "list"], 2,
             ("'half'", "--profile half", "rds:DescribeDBSnapshots", "{primary}"),
             aws_config="[profile half]\nregion = us-east-1\n"),
        # -- expired / unknown tokens, opt-in regions (sandbox answers) ----------------------------
        Case("expired-token-status", ["status"], 2, ("expired", "aws sso login", "hosted zone"),
             faults=({"kind": "denied", "code": "ExpiredToken"},)),
        Case("expired-token-exception-cert-check", ["ops", "cert", "check"], 2,
             ("expired", "ExpiredTokenException", "aws sso login"), "chess",
             faults=({"kind": "denied", "code": "ExpiredTokenException", "service": "acm"},)),
        Case("request-expired-snapshot-list", ["snapshot", "list"], 2, ("expired", "RequestExpired", "{primary}"),
             faults=({"kind": "denied", "code": "RequestExpired", "service": "rds"},)),
        Case("invalid-client-token-iam-policy", ["iam-policy", "--procedure", "failover"], 2,
             ("InvalidClientTokenId", "aws sts get-caller-identity"),
             faults=({"kind": "denied", "code": "InvalidClientTokenId", "service": "sts"},)),
        Case("opt-in-region-unrecognized-client", ["snapshot", "list", "--region", "secondary"], 2,
             ("{secondary}", "UnrecognizedClientException", "opt-in", "enable {secondary}"), "chess",
             faults=({"kind": "denied", "code": "UnrecognizedClientException", "region": "secondary"},)),
        Case("opt-in-required-dr-region", ["promote", "--dry-run"], 2,
             ("{secondary}", "not enabled", "enable-region"),
             faults=({"kind": "denied", "code": "OptInRequired", "region": "secondary"},)),
        Case("endpoint-unreachable-dr-region", ["snapshot", "list", "--region", "secondary"], 2,
             ("{secondary}", "did not answer", "aws sts get-caller-identity"), "chess",
             faults=({"kind": "unreachable", "region": "secondary"},)),
        # -- IAM refusals (exit 3), the action and the policy to print named -----------------------
        Case("access-denied-readiness", ["readiness"], 3,
             ("access denied", "rds:DescribeDBInstances", "dr iam-policy --procedure failover"),
             faults=({"kind": "denied", "service": "rds", "operation": "DescribeDBInstances"},)),
        Case("access-denied-exception-status", ["status"], 3,
             ("eks:DescribeNodegroup", "dr iam-policy --procedure failover"), "chess",
             faults=({"kind": "denied", "service": "eks", "operation": "DescribeNodegroup"},)),
        Case("access-denied-triage", ["ops", "triage"], 3,
             ("rds:DescribeDBInstances", "dr iam-policy --procedure ops", "partial"), "chess",
             faults=({"kind": "denied", "service": "rds"},)),
        Case("access-denied-dns-status", ["dns", "status"], 3,
             ("route53:ListHostedZonesByName", "dr iam-policy --procedure failover"),
             faults=({"kind": "denied", "service": "route53"},)),
        Case("expired-token-triage", ["ops", "triage", "--region", "secondary"], 2,
             ("expired", "aws sso login", "{secondary}"), "chess",
             faults=({"kind": "denied", "code": "ExpiredToken"},)),
        Case("unauthorized-operation-snapshot-create", ["snapshot", "create", "--yes"], 3,
             ("rds:CreateDBSnapshot", "UnauthorizedOperation", "dr iam-policy --procedure snapshot", "--resume"),
             faults=({"kind": "denied", "code": "UnauthorizedOperation", "service": "rds",
                      "operation": "CreateDBSnapshot"},), stops_at="create-snapshot"),
        # -- mid-plan: earlier steps changed things; fix, --resume, nothing done twice -------------
        Case("waf-block-denied-in-dr-region", ["ops", "waf", "block", "198.51.100.0/24", "--yes"], 3,
             ("wafv2:UpdateIPSet", "{secondary}", "dr iam-policy --procedure ops", "--resume"),
             faults=({"kind": "denied", "service": "wafv2", "operation": "UpdateIPSet", "region": "secondary"},),
             stops_at="waf-block-{dr_site}"),
        Case("ops-scale-nodegroup-denied", ["ops", "scale", "nodegroup", "--min", "2", "--max", "6",
             "--desired", "3", "--yes"], 3,
             ("eks:UpdateNodegroupConfig", "{primary}", "dr iam-policy --procedure ops", "dr ops scale --resume"),
             faults=({"kind": "denied", "service": "eks", "operation": "UpdateNodegroupConfig"},),
             stops_at="scale-nodegroup"),
        Case("dns-failover-denied", ["dns", "failover", "--to", "secondary", "--yes"], 3,
             ("route53:UpdateHealthCheck", "AccessDenied", "dr iam-policy --procedure failover",
              "dr dns failover --resume"), "chess",
             faults=({"kind": "denied", "service": "route53", "operation": "UpdateHealthCheck"},),
             stops_at="route-traffic"),
        Case("failover-denied-nodegroup-scale", ["failover", "--mode", "unplanned", "--yes"], 3,
             ("eks:UpdateNodegroupConfig", "{secondary}", "dr iam-policy --procedure failover",
              "dr failover --resume"),
             faults=({"kind": "denied", "service": "eks", "operation": "UpdateNodegroupConfig"},),
             stops_at="scale-nodegroup"),
        Case("failover-denied-dns-change", ["failover", "--mode", "unplanned", "--yes"], 3,
             ("route53:ChangeResourceRecordSets", "dr iam-policy --procedure failover", "--resume"), "chess",
             faults=({"kind": "denied", "service": "route53", "operation": "ChangeResourceRecordSets"},),
             stops_at="route-traffic"),
        Case("failover-token-expires-at-promotion", ["failover", "--mode", "unplanned", "--yes"], 2,
             ("expired", "aws sso login", "{secondary}", "--resume"), "chess",
             faults=({"kind": "denied", "code": "ExpiredToken", "service": "rds",
                      "operation": "PromoteReadReplica"},), stops_at="promote-db"),
    ]  # fmt: skip


CASES = _cases()


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)
    assert {c.estate for c in CASES} == set(ESTATES)
    assert sum(1 for c in CASES if c.stops_at) >= 4


# Mid-plan failovers (region, DNS) change the estate for good: each gets its own; the others share
# one per estate.
def _shared(case: Case) -> bool:
    return case.stops_at is None or case.args[0] not in ("failover", "dns")


class Estates:
    """One running estate at a time: moto's backends are global to the process, so starting an
    estate resets the previous one's (the cases are ordered by estate: one switch)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name: str | None = None
        self._stack = contextlib.ExitStack()

    def get(self, name: str, *, fresh: bool = False) -> Estate:
        if fresh or name != self.name:
            self.close()
            directory = self.root / f"{name}-{len(list(self.root.iterdir()))}"
            self.current = self._stack.enter_context(running_estate(directory, stack_dir=ESTATES[name]))
            self.name = None if fresh else name
        return self.current

    def close(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.name = None


@pytest.fixture(scope="module")
def estates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estates]:
    holder = Estates(tmp_path_factory.mktemp("r8"))
    try:
        yield holder
    finally:
        holder.close()


SHARED = sorted((c for c in CASES if _shared(c)), key=lambda c: c.estate != "ours")
OWN = [c for c in CASES if not _shared(c)]


@pytest.mark.parametrize("case", SHARED, ids=[c.id for c in SHARED])
def test_setup_or_permission_error_is_one_message(
    estates: Estates, case: Case, tmp_path: Path, record_property: Any
) -> None:
    _check(estates.get(case.estate), case, tmp_path, record_property)


@pytest.mark.parametrize("case", OWN, ids=[c.id for c in OWN])
def test_plan_stopped_by_iam_resumes_without_repeating(
    estates: Estates, case: Case, tmp_path: Path, record_property: Any
) -> None:
    _check(estates.get(case.estate, fresh=True), case, tmp_path, record_property)


def _names(e: Estate) -> dict[str, str]:
    return {
        "primary": e.estate.primary.region,
        "secondary": e.estate.secondary.region,
        "dr_site": e.estate.secondary.site.name,
    }


def _run(e: Estate, case: Case, args: list[str], tmp: Path) -> Any:
    """``dr -o json ARGS`` in the case's environment: for --target aws, an AWS config of its own
    and no credentials anywhere (no keys, no profile, no SSO token cache, no instance metadata)."""
    env = e.env()
    if case.aws_config is not None:
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        config = tmp / "aws-config"
        config.write_text(case.aws_config)
        env.update(
            DR_TARGET="aws",
            AWS_CONFIG_FILE=str(config),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            HOME=str(tmp),
        )
        if case.sso_token_expired:
            _expired_sso_token(tmp / ".aws" / "sso" / "cache")
    env.update(case.env)
    if case.sso_token_expired:
        # a fresh interpreter: botocore fixes the SSO cache directory (~) when it is imported, and
        # the zygote imported it under the test's HOME
        import subprocess
        import sys

        proc = subprocess.run(
            [sys.executable, "-m", "dr", "-o", "json", *args],
            env=env,
            cwd=e.directory,
            capture_output=True,
            text=True,
            timeout=240,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)
    assert e.zygote is not None
    return e.zygote.spawn(["-o", "json", *args], env, e.directory).wait(240)


def _expired_sso_token(cache: Path) -> None:
    """What `aws sso login` left behind a day ago: an access token past its expiry, no refresh token."""
    import datetime as dt
    import hashlib

    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    cache.mkdir(parents=True, exist_ok=True)
    token = {
        "startUrl": "https://corp.awsapps.com/start",
        "region": "eu-west-1",
        "accessToken": "expired-token",
        "expiresAt": yesterday.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (cache / f"{hashlib.sha1(b'corp').hexdigest()}.json").write_text(json.dumps(token))


def _check(e: Estate, case: Case, tmp: Path, record_property: Any) -> None:
    from dr.sandbox.fakeaws.faults import FaultRule

    names = _names(e)
    says = [s.format(**names) for s in case.says]
    mark = e.received.mark()
    for spec in case.faults:
        rule = dict(spec)
        if rule.get("region") in ("primary", "secondary"):
            rule["region"] = names[rule["region"]]
        e.realism.faults.add(FaultRule(**rule))
    try:
        res = _run(e, case, case.args, tmp)
    finally:
        e.realism.faults.clear()
    for out in (res.stdout, res.stderr):
        assert "Traceback" not in out, out[-3000:]
    assert res.returncode == case.code, (res.returncode, res.stdout[-1500:], res.stderr[-3000:])
    err = res.stderr.lower()
    for word in says:
        assert word.lower() in err, (word, res.stderr[-3000:])
    # one message: a single "Error:" (plus its hint lines), not a report of every failed call
    assert sum(line.startswith("Error:") for line in res.stderr.splitlines()) == 1, res.stderr[-3000:]
    doc = json.loads(res.stdout)  # -o json: the error (or the stopped run) is still one JSON document
    if case.stops_at is None:
        if "denied" in doc:  # a read-only report (status, readiness): whole, naming what was refused
            assert doc["denied"], doc
        else:
            assert doc["exit_code"] == case.code and doc["message"], doc
        return
    _resume(e, case, doc, mark)
    record_property("resumed", 1)  # scripts/bench.py: R8's "stopped mid-plan, then resumed"


def _resume(e: Estate, case: Case, doc: dict[str, Any], mark: int) -> None:
    names = _names(e)
    stop = case.stops_at.format(**names) if case.stops_at else ""
    run = doc["run"]
    failed = [s for s in run["steps"] if s["status"] == "failed"]
    assert [s["id"] for s in failed] == [stop], run["steps"]
    assert failed[0]["exit_code"] == case.code and failed[0]["error_code"], failed[0]
    # the journal on disk says where the run stopped and why (what --resume reads back)
    events = [
        json.loads(line) for line in (e.runs / run["run_id"] / "journal.jsonl").read_text().splitlines()
    ]
    stopped = [ev for ev in events if ev["kind"] == "step_failed"]
    assert [(ev["step"], ev.get("error_code")) for ev in stopped] == [(stop, failed[0]["error_code"])], (
        stopped
    )
    finished = [ev for ev in events if ev["kind"] == "run_finished"]
    assert finished[-1]["status"] == "failed" and finished[-1]["stopped_by"]["step"] == stop, finished
    assert finished[-1]["stopped_by"]["exit_code"] == case.code, finished

    res = e.dr([*case.args, "--resume", run["run_id"]], timeout=300)  # the operator fixed the policy
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    resumed = json.loads(res.stdout)["run"]
    assert resumed["status"] == "succeeded", resumed
    # nothing the servers accepted was sent twice (the refused call does not count: it changed nothing)
    effective = e.received.effective_since(mark)
    assert e.received.duplicates(effective) == {}
    assert effective, "the run changed something (not a vacuous pass)"
