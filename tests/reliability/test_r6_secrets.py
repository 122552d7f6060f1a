"""R6: a known secret (the DB master password in Secrets Manager, RDS and the Kubernetes Secret's URL)
never appears in stdout, stderr, logs, journals or reports of any command.

One estate per worker; commands run in order (reads, dry runs, ops, then the real failover and a
password rotation whose NEW password must not leak either). After each command every file under the
estate's directory (stdout/stderr captures, run journals, evidence, incident files, call logs) is
searched for the secret in plain, URL-quoted and base64 forms.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.reliability.harness import SECRET, Estate, running_estate

pytestmark = pytest.mark.slow

COMMANDS: list[list[str]] = [
    ["status"],
    ["readiness"],
    ["doctor"],
    ["topology", "show"],
    ["ops", "triage"],
    ["ops", "flag", "list"],
    ["snapshot", "list"],
    ["snapshot", "create", "--yes"],
    ["failover", "--mode", "unplanned", "--dry-run"],
    ["ops", "rotate-db-secret", "--dry-run"],
    ["incident", "start", "--sev", "1", "--summary", "R6 drill"],
    ["ops", "rotate-db-secret", "--yes", "--timeout", "60"],
    ["failover", "--mode", "unplanned", "--yes", "--timeout", "60"],
    ["status"],
]


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    with running_estate(tmp_path_factory.mktemp("r6") / "e") as e:
        yield e


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}


def _current_passwords(e: Estate) -> set[str]:
    """The seeded password and whatever the secret holds now (after a rotation: the new one)."""
    found = {SECRET}
    for view in (e.estate.primary, e.estate.secondary):
        raw = e.clients.client("secretsmanager", view.region).get_secret_value(
            SecretId=e.estate.app.db_secret.secrets_manager_id
        )["SecretString"]
        found.add(json.loads(raw)["password"])
    return found


def _leaks(directory: Path, secrets: set[str]) -> list[str]:
    forms = {f for s in secrets for f in _forms(s)}
    hits = []
    for path in directory.rglob("*"):
        if path.is_file() and path.name != "kubeconfig":
            text = path.read_bytes().decode("utf-8", "replace")
            hits += [f"{path.relative_to(directory)}: {f[:4]}…" for f in forms if f in text]
    return hits


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[:3]) for a in COMMANDS])
def test_secret_never_printed_logged_or_journaled(estate: Estate, args: list[str]) -> None:
    e = estate
    log = e.new_log("r6")
    res = e.dr(args, log=log, DR_INCIDENTS_DIR=str(e.directory / "incidents"))
    assert res.returncode in (0, 1), (res.returncode, res.stderr[-1500:])  # readiness may fail a check
    secrets = _current_passwords(e)
    assert len(secrets) >= 1
    for text in (res.stdout, res.stderr):
        assert not any(f in text for s in secrets for f in _forms(s))
    assert _leaks(e.directory, secrets) == []
    if args[:2] == ["ops", "rotate-db-secret"] and "--yes" in args:
        assert res.returncode == 0, res.stderr[-1500:]
        assert len(secrets) == 2, "the rotation changed the password (so the new one was searched too)"


def test_the_search_finds_a_planted_secret(tmp_path: Path) -> None:
    """Control: the scan is not vacuous (plain, URL-quoted and base64 forms are all found)."""
    for i, form in enumerate(sorted(_forms(SECRET + "/+="))):
        (tmp_path / f"f{i}.log").write_text(f"postgresql://app:{form}@db")
    assert len(_leaks(tmp_path, {SECRET + "/+="})) == 3
