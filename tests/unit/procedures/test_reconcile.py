"""`dr reconcile`: the stack-file rewrite, and — with Pulumi mocks — that the program after it keeps
every URN and physical name, declares the promoted DB without a replication source and replaces
nothing that holds data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dr.errors import BadInput
from dr.procedures.reconcile import apply, plan_reconcile
from dr.topology import load_estate

ROOT = Path(__file__).resolve().parents[3]
STACKS = ROOT / "stacks"
DATA_TYPES = {
    "aws:rds/instance:Instance",
    "aws:kms/key:Key",
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:s3/bucket:Bucket",
    "aws:dynamodb/table:Table",
    "aws:dynamodb/tableReplica:TableReplica",
    "aws:route53/zone:Zone",
}


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    dst = tmp_path / "stacks"
    shutil.copytree(STACKS, dst)
    return dst


def test_reconcile_swaps_roles_sizes_and_standby_replicas_keeping_names(stacks: Path) -> None:
    before = load_estate(stacks, "prod")
    change = plan_reconcile(stacks, primary="dr")
    assert not change.noop and change.comments_kept
    diff = change.diff()
    assert "-  dr-toolkit:role: standby" in diff and "+  dr-toolkit:role: primary" in diff
    assert not (stacks / "Pulumi.dr.yaml").read_text().count("role: primary")  # nothing written yet
    apply(change)
    after = load_estate(stacks, "prod")
    assert (after.primary.stack, after.primary.region) == ("dr", before.secondary.region)
    assert after.primary.database.identifier == before.secondary.database.identifier  # same physical name
    assert after.secondary.database.identifier == before.primary.database.identifier
    assert after.primary.cluster.nodegroup.desired_size == before.primary.cluster.nodegroup.desired_size
    assert after.secondary.cluster.nodegroup.min_size == before.secondary.cluster.nodegroup.min_size
    assert after.secondary.site.standby_replicas == before.secondary.site.standby_replicas
    assert after.primary.site.standby_replicas == {}
    # The home stack keeps owning the zone and the lock table: primaryStackRef stays where it was.
    dr_doc = yaml.safe_load((stacks / "Pulumi.dr.yaml").read_text())["config"]
    prod_doc = yaml.safe_load((stacks / "Pulumi.prod.yaml").read_text())["config"]
    assert dr_doc["dr-toolkit:primaryStackRef"] == "organization/dr-toolkit/prod"
    assert "dr-toolkit:primaryStackRef" not in prod_doc
    # Comments survive.
    assert (stacks / "Pulumi.prod.yaml").read_text().startswith("# Primary region of claude-deployment")
    # Idempotent.
    again = plan_reconcile(stacks, primary="dr")
    assert again.noop and "already reconciled" in again.summary


def test_reconcile_back_restores_the_shipped_files_exactly(stacks: Path) -> None:
    apply(plan_reconcile(stacks, primary="dr"))
    apply(plan_reconcile(stacks, primary="prod"))
    for name in ("Pulumi.prod.yaml", "Pulumi.dr.yaml"):
        assert yaml.safe_load((stacks / name).read_text()) == yaml.safe_load((STACKS / name).read_text())
    assert (stacks / "Pulumi.prod.yaml").read_text() == (STACKS / "Pulumi.prod.yaml").read_text()


def test_reconcile_refuses_two_primaries(stacks: Path) -> None:
    path = stacks / "Pulumi.dr.yaml"
    path.write_text(path.read_text().replace("dr-toolkit:role: standby", "dr-toolkit:role: primary"))
    with pytest.raises(BadInput, match="both primary"):
        plan_reconcile(stacks, primary="dr")


BACKUP_REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"


@pytest.mark.slow
def test_program_after_reconcile_keeps_urns_and_replaces_nothing_holding_data(stacks: Path) -> None:
    from dr.infra.mockrun import run_many_subprocess

    apply(plan_reconcile(stacks, primary="dr"))
    runs = run_many_subprocess(
        {
            "dr-before": (str(STACKS), "dr"),
            "prod-before": (str(STACKS), "prod"),
            "dr-after": (str(stacks), "dr"),
            "prod-after": (str(stacks), "prod"),
        }
    )
    for stack in ("dr", "prod"):
        before, after = runs[f"{stack}-before"], runs[f"{stack}-after"]
        assert before.role != after.role
        b = {r.urn: r for r in before.resources}
        a = {r.urn: r for r in after.resources}
        # Same URNs — nothing created or deleted — except what follows the standby role: the
        # automated-backup replication (into the new standby's region, from the new primary;
        # stopping it keeps the backups already replicated) and the continuous-readiness
        # component (alarms and topic in the region that survives the primary's loss).
        changed = {urn: (b.get(urn) or a[urn]).type for urn in set(b) ^ set(a)}
        readiness = {urn for urn in changed if "dr:infra:Readiness" in urn.split("::")[-2]}
        assert all((urn in a) == (after.role == "standby") for urn in readiness), readiness
        ((moved, kind),) = {urn: t for urn, t in changed.items() if urn not in readiness}.items()
        assert kind == BACKUP_REPLICATION, (stack, moved)
        assert (moved in b) == (before.role == "standby") and (moved in a) == (after.role == "standby")
        for urn, res in a.items():
            if urn not in b:
                continue
            assert res.physical == b[urn].physical, (urn, b[urn].physical, res.physical)
            if res.type in DATA_TYPES:
                assert res.protect and res.retain_on_delete, urn  # a replacement would be refused
    # The promoted instance: same identifier, declared without a replication source.
    db_before = runs["dr-before"].one("aws:rds/instance:Instance")
    db_after = runs["dr-after"].one("aws:rds/instance:Instance")
    assert db_before.inputs.get("replicateSourceDb")
    assert not db_after.inputs.get("replicateSourceDb")
    assert db_after.inputs["identifier"] == db_before.inputs["identifier"] == "claude-deployment-replica"
    # The demoted old primary is now declared as a replica of the promoted one (failback re-protects it).
    assert runs["prod-after"].one("aws:rds/instance:Instance").inputs.get("replicateSourceDb")
    # Production capacity follows the primary.
    ng = runs["dr-after"].one("aws:eks/nodeGroup:NodeGroup").inputs["scalingConfig"]
    assert (ng["minSize"], ng["desiredSize"]) == (3, 6)
