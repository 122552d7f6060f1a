"""Shared fixtures: no test ever talks to real AWS or reads the developer's credentials."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STACKS = ROOT / "stacks"


def pytest_configure(config: pytest.Config) -> None:
    # moto (in-process in most tests) builds boto3 sessions internally; one shared botocore loader
    # parses each model once per process instead of once per session (as the sandbox's server does)
    from dr.aws.session import cache_moto_partitions, share_loader_process_wide

    share_loader_process_wide()
    cache_moto_partitions()
    _one_private_key_per_kms_key_spec()


# The longest test modules (each minutes of one worker): collected first, so that pytest-xdist
# starts them at once on one worker while the other workers share the rest, instead of one worker
# running them alone at the end. A module's tests stay together (their sandbox is module-scoped).
LONGEST_FIRST = (
    "tests/reliability/test_r9_soak.py",
    "tests/integration/test_drills.py",
    "tests/integration/test_byo_estates.py",
    "tests/integration/test_replicated_backups.py",
    "tests/integration/test_dr_failover.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside each module (and of the rest) is kept


def _one_private_key_per_kms_key_spec() -> None:
    """moto generates a private key for every KMS key it creates, a 2048-bit RSA one for symmetric
    keys too (~60 ms each; every seeded estate creates two, ~25 s of CPU per suite run). Nothing
    here signs with KMS or reads a public key: the keys of one spec share one private key."""
    import functools

    import moto.kms.models as kms_models

    kms_models.generate_private_key = functools.cache(kms_models.generate_private_key)  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # moto parses its bundled AMI list for every region's EC2 backend, each test (EKS nodegroups
        # create one): ~0.2 s per region per test; nothing here looks at AMIs (the sandbox does the same)
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.delenv("DR_TARGET", raising=False)
    monkeypatch.delenv("DR_STACK", raising=False)
    monkeypatch.setenv("DR_STACK_DIR", str(STACKS))


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped stack files (tests may corrupt it on purpose)."""
    dst = tmp_path / "stacks"
    shutil.copytree(STACKS, dst)
    return dst


@pytest.fixture
def estate():
    from dr.topology import load_estate

    return load_estate(STACKS, "prod")
