"""A small two-region estate behind the sandbox's realism layer, in this process, for `dr` subprocesses.

moto's server + :class:`dr.sandbox.fakeaws.middleware.Realism` (transitions, AWS-side validations, fault
injection) + the fake Kubernetes API of both clusters, seeded with the light moto seeding of the unit
tests (seconds, not the full sandbox's ~15 s). A ``state.json`` in ``DR_SANDBOX_DIR`` makes
``python -m dr --target sandbox ...`` talk to it exactly as it talks to ``dr sandbox up``.

Every ``dr`` process is forked from a pre-imported zygote (:mod:`tests.reliability.zygote`: it runs
exactly what ``python -m dr`` runs, without re-importing boto3 and the kubernetes client for each
process) and writes a call log (:mod:`tests.reliability.callog`): every AWS call and Kubernetes write
it attempted, flushed before the request is sent. A fresh ``python -m dr`` gets the same hooks from
``tests/reliability/shim/sitecustomize.py`` (R1 checks one such process too).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, STACKS
from tests.reliability.callog import read_log
from tests.reliability.received import ReceivedLog
from tests.unit.procedures.estate_seed import PASSWORD as SECRET  # seeded DB password (R6 looks for it)

SHIM = Path(__file__).resolve().parent / "shim"


@dataclass
class Estate:
    directory: Path
    estate: Any
    server: Any
    realism: Any
    clients: Any
    kubeconfig: str
    apis: dict[str, Any]
    runs: Path
    logs: list[Path] = field(default_factory=list)
    zygote: Zygote | None = None
    # mutating requests as the servers received them (exact after a kill -9; see received.py)
    received: ReceivedLog = field(default_factory=ReceivedLog)
    stack_dir: Path = STACKS

    # -- the CLI in a subprocess -------------------------------------------------------------------
    def env(self, log: Path | None = None, **extra: str) -> dict[str, str]:
        env = _base_env(self.directory, self.stack_dir)
        if log is not None:
            env["DR_RELIABILITY_CALL_LOG"] = str(log)
        env.update(extra)
        return env

    def new_log(self, name: str) -> Path:
        path = self.directory / f"calls-{name}-{len(self.logs)}.jsonl"
        self.logs.append(path)
        return path

    def dr(self, args: list[str], *, log: Path | None = None, timeout: float = 120, **extra: str) -> Result:
        """Run ``dr -o json ARGS`` to completion (a forked ``python -m dr``; see zygote.py)."""
        child = self.spawn(args, log=log, **extra)
        return child.wait(timeout)

    def spawn(self, args: list[str], *, log: Path | None = None, **extra: str) -> Child:
        assert self.zygote is not None
        return self.zygote.spawn(["-o", "json", *args], self.env(log, **extra), self.directory)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Zygote:
    """Client of tests/reliability/zygote.py (one per estate)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.zygote"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._seq = 0
        self._ready = False
        self.live: set[int] = set()  # spawned, not yet reaped

    def _wait_ready(self) -> None:
        if not self._ready:
            assert json.loads(self._readline())["ready"]
            self._ready = True

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died (exit {self.proc.wait()})")
        return line

    def request(self, **req: Any) -> dict[str, Any]:
        self._wait_ready()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self._readline())
        return reply

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> Child:
        self._seq += 1
        out, err = cwd / f"proc-{self._seq}.out", cwd / f"proc-{self._seq}.err"
        pid = int(
            self.request(op="spawn", argv=argv, env=env, cwd=str(cwd), stdout=str(out), stderr=str(err))[
                "pid"
            ]
        )
        self.live.add(pid)
        return Child(self, pid, out, err)

    def close(self) -> None:
        """Kill -9 whatever is still running (a failed test may leave a frozen child), then stop."""
        for pid in list(self.live):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.request(op="wait", pid=pid)
            self.live.discard(pid)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Child:
    """One forked ``dr`` process."""

    zygote: Zygote
    pid: int
    out: Path
    err: Path
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.request(op="poll", pid=self.pid)["returncode"]
            if self.returncode is not None:
                self.zygote.live.discard(self.pid)
        return self.returncode

    def kill9(self) -> int:
        os.kill(self.pid, signal.SIGKILL)
        returncode: int = self.zygote.request(op="wait", pid=self.pid)["returncode"]
        self.returncode = returncode
        self.zygote.live.discard(self.pid)
        return returncode

    def wait(self, timeout: float = 120) -> Result:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.kill9()
                raise TimeoutError(
                    f"dr (pid {self.pid}) did not finish in {timeout} s: {self.err.read_text()[-2000:]}"
                )
            time.sleep(0.02)
        assert self.returncode is not None
        return Result(self.returncode, self.out.read_text(), self.err.read_text())


def _base_env(directory: Path, stack_dir: Path = STACKS) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SHIM), str(ROOT)]),
        "DR_TARGET": "sandbox",
        "DR_SANDBOX_DIR": str(directory),
        "DR_RUNS_DIR": str(directory / "runs"),
        "DR_STACK_DIR": str(stack_dir),
        "PYTHONWARNINGS": "ignore",
    }


def sent_mutations(log: Path) -> list[dict[str, Any]]:
    return [c for c in read_log(log) if c["mutating"] and c["sent"]]


def effect_key(call: dict[str, Any]) -> str:
    """What a mutating call does, by resource (two equal keys = the same side effect twice)."""
    if call["kind"] == "kube":
        return f"kube:{call['operation']} {call['path']} {json.dumps(call.get('body'), sort_keys=True)}"
    params = {k: v for k, v in call["params"].items() if k not in ("ClientRequestToken", "CallerReference")}
    return f"{call['service']}:{call['operation']}@{call['region']} {json.dumps(params, sort_keys=True)}"


def infra_mutations(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mutating calls on the estate: not the run lock (DynamoDB) nor the journal mirror (S3)."""
    return [c for c in calls if c["kind"] == "kube" or c["service"] not in ("dynamodb", "s3")]


def duplicates(calls: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(effect_key(c) for c in infra_mutations(calls))
    return {k: n for k, n in counts.items() if n > 1}


def _reset_moto(url: str) -> None:
    req = urllib.request.Request(url + "/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def _create_clusters(clients: Any, estate: Any) -> None:
    role = "arn:aws:iam::123456789012:role/eks"
    for view in (estate.primary, estate.secondary):
        eks = clients.client("eks", view.region)
        eks.create_cluster(
            name=view.cluster.name, roleArn=role, resourcesVpcConfig={"subnetIds": []}, version="1.31"
        )
        ng = view.cluster.nodegroup
        eks.create_nodegroup(
            clusterName=view.cluster.name,
            nodegroupName=ng.name,
            nodeRole=role,
            subnets=["subnet-1"],
            scalingConfig={"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size},
        )


def manual_snapshot(e: Estate) -> str:
    """A manual snapshot of the primary DB (created once per estate, outside the realism layer)."""
    rds = e.clients.client("rds", e.estate.primary.region)
    ident = e.estate.primary.database.identifier
    snaps = rds.describe_db_snapshots(DBInstanceIdentifier=ident, SnapshotType="manual")["DBSnapshots"]
    if snaps:
        return str(snaps[0]["DBSnapshotIdentifier"])
    with e.realism.disabled():
        rds.create_db_snapshot(DBSnapshotIdentifier="manual-snapshot-reliability", DBInstanceIdentifier=ident)
    return "manual-snapshot-reliability"


def put_lag(clients: Any, estate: Any, seconds: float) -> None:
    clients.client("cloudwatch", estate.secondary.region).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [
                    {"Name": "DBInstanceIdentifier", "Value": estate.secondary.database.identifier}
                ],
                "Value": seconds,
                "Unit": "Seconds",
                "Timestamp": dt.datetime.now(dt.UTC),
            }
        ],
    )


@contextlib.contextmanager
def running_estate(directory: Path, *, seed_eks: bool = True, stack_dir: Path = STACKS) -> Iterator[Estate]:
    """Start moto + realism + fake clusters, seed the estate of ``stack_dir`` (its primary stack is
    ``prod``), write state.json; stop on exit."""
    import logging

    from dr.aws.session import ClientProvider
    from dr.sandbox.fakeaws.middleware import Realism
    from dr.sandbox.fakekube import serve_estate
    from dr.sandbox.latency import LatencyProfile
    from dr.sandbox.server import MotoServer
    from dr.target import SANDBOX_CREDENTIALS
    from dr.topology import load_estate
    from tests.unit.procedures import estate_seed

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    directory.mkdir(parents=True, exist_ok=True)
    zygote = Zygote(_base_env(directory, stack_dir))  # imports while the estate is seeded
    realism: Any = None
    server: Any = None
    received = ReceivedLog()
    try:
        estate = load_estate(stack_dir, "prod")
        realism = Realism(estate, LatencyProfile(), seed=7)
        server = MotoServer(
            middleware=lambda app: received.wsgi(realism.middleware(app)), regions=estate.regions
        ).start()
        _reset_moto(server.url)
        realism.start()
        clients = ClientProvider(
            endpoint_url=server.url,
            credentials=dict(SANDBOX_CREDENTIALS),
            retry_mode="standard",
            max_attempts=3,
        )
        with realism.disabled():
            seeded = estate_seed.seed(clients, estate)
            if seed_eks:
                _create_clusters(clients, estate)
            for view in (estate.primary, estate.secondary):
                clients.client("wafv2", view.region).create_ip_set(
                    Name=view.edge.ip_set_name,
                    Scope="REGIONAL",
                    IPAddressVersion="IPV4",
                    Addresses=["192.0.2.1/32"],
                )
            put_lag(clients, estate, 0.0)
        # The light seeding names health checks by tag, not by the sandbox's caller reference: tell
        # the realism layer which region each one watches (GetHealthCheckStatus answers from it).
        by_id = {hc: region for region, hc in seeded.health_checks.items()}
        realism.health_check_region = by_id.get
        user, db = estate.app.database.username, estate.app.database.db_name
        urls = {
            "primary": f"postgresql://{user}:{SECRET}@{estate.primary.database.identifier}.db:5432/{db}",
            "standby": f"postgresql://{user}:{SECRET}@{estate.secondary.database.identifier}.db:5432/{db}",
        }
        kc = str(directory / "kubeconfig")
        with serve_estate(estate, kc, capacity_fn=lambda _c: 500, database_urls=urls) as apis:
            for name, api in apis.items():
                api.on_write = received.kube_writer(name)
            state = {"aws_endpoint": server.url, "aws_endpoints": server.region_urls, "kubeconfig": kc}
            (directory / "state.json").write_text(json.dumps(state))
            e = Estate(
                directory,
                estate,
                server,
                realism,
                clients,
                kc,
                apis,
                directory / "runs",
                received=received,
                stack_dir=stack_dir,
            )
            e.zygote = zygote
            yield e
    finally:
        zygote.close()
        if realism is not None:
            realism.stop()
        if server is not None:
            server.stop()
