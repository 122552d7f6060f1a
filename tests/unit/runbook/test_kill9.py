"""A real `kill -9` of a process mid-step, then --resume: no mutating call is ever repeated.

The plan runs in a subprocess against a moto server (state outlives the process). The child
logs every mutating call to a file as it is made (a recorder that writes through), is killed
right after its CreateDBSnapshot for step s2, and the parent resumes the run — taking over the
lock of the dead process without waiting for its lease to expire.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr.aws.session import CallRecorder, ClientProvider
from dr.runbook.journal import Journal
from dr.runbook.lock import DynamoLock, create_lock_table
from dr.runbook.poll import PollPolicy, wait_until
from dr.runbook.runner import run_plan
from tests.unit.runbook.snapplan import REGION, create_db, snapshot_plan

ROOT = Path(__file__).resolve().parents[3]
TABLE = "kill9-dr-lock"
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"}

CHILD = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path
    from dr.aws.session import CallRecorder, ClientProvider
    from dr.runbook.lock import DynamoLock
    from dr.runbook.runner import run_plan
    from tests.unit.runbook.snapplan import snapshot_plan

    endpoint, runs_dir, calls_log, marker = sys.argv[1:5]
    creds = {creds}

    class WriteThrough(CallRecorder):
        def record(self, call):
            super().record(call)
            if call.mutating:
                with open(calls_log, "a") as fh:
                    fh.write(json.dumps(call.to_dict()) + "\\n")
                    fh.flush()

    clients = ClientProvider(endpoint_url=endpoint, credentials=creds)
    recorder = clients.add_recorder(WriteThrough())
    plan = snapshot_plan(clients)
    original = plan.step("s2").action

    def hang_after_side_effect(ctx):
        original(ctx)
        Path(marker).write_text("s2 snapshot requested")
        threading.Event().wait()  # the parent kill -9s us here

    plan.step("s2").action = hang_after_side_effect
    lock = DynamoLock(ClientProvider(endpoint_url=endpoint, credentials=creds), table={table!r},
                      region={region!r}, name="snapshots", holder="ci@runner")
    run_plan(plan, {{"clients": clients}}, dry_run=False, assume_yes=True, resume=None,
             runs_dir=Path(runs_dir), lock=lock, break_lock=False, output="json", recorder=recorder)
    """
).format(creds=CREDS, table=TABLE, region=REGION)


@pytest.fixture
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


def test_kill_9_mid_step_then_resume_repeats_nothing(endpoint: str, tmp_path: Path) -> None:
    clients = ClientProvider(endpoint_url=endpoint, credentials=CREDS)
    create_db(clients)
    create_lock_table(clients, TABLE, REGION)
    runs, calls_log, marker = tmp_path / "runs", tmp_path / "calls.jsonl", tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, endpoint, str(runs), str(calls_log), str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: marker.exists() or child.poll() is not None,
            timeout=60,
            policy=PollPolicy(first=0.05, cap=0.2, floor=0.2),
            what="the child to reach step s2",
        )
        assert child.poll() is None, child.communicate()[1].decode()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    (run_id,) = [p.name for p in runs.iterdir()]
    state = Journal.load(runs, run_id)
    assert state.completed == {"s1"} and state.interrupted == ["s2"]
    lock_item = DynamoLock(clients, table=TABLE, region=REGION, name="snapshots").peek()
    assert lock_item is not None and lock_item["run_id"] == run_id  # the dead run still holds it

    recorder = clients.add_recorder(CallRecorder())
    lock = DynamoLock(
        ClientProvider(endpoint_url=endpoint, credentials=CREDS),
        table=TABLE,
        region=REGION,
        name="snapshots",
        holder="ci@runner",
    )
    result = run_plan(
        snapshot_plan(clients),
        {"clients": clients},
        dry_run=False,
        assume_yes=True,
        resume=run_id,
        runs_dir=runs,
        lock=lock,
        break_lock=False,
        output="json",
        recorder=recorder,
    )
    assert result.status == "succeeded", result.summary()
    assert [s.status for s in result.steps] == ["done", "skipped", "done"]

    before = [json.loads(line) for line in calls_log.read_text().splitlines()]
    after = [c.to_dict() for c in recorder.mutating()]
    creates = Counter(
        c["params"]["DBSnapshotIdentifier"] for c in before + after if c["operation"] == "CreateDBSnapshot"
    )
    assert creates == {"manual-snapshot-s1": 1, "manual-snapshot-s2": 1, "manual-snapshot-s3": 1}
    assert DynamoLock(clients, table=TABLE, region=REGION, name="snapshots").peek() is None
