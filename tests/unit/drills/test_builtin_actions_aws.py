"""Built-in AWS fault providers against moto (validating what real RDS validates)."""

from __future__ import annotations

import pytest
from moto import mock_aws

from dr.aws.session import CallRecorder, ClientProvider
from dr.drills import registry
from dr.drills.drill_context import DrillContext
from dr.errors import BadInput


def _ctx(estate, clients: ClientProvider) -> DrillContext:  # type: ignore[no-untyped-def]
    return DrillContext(run_id="t", target="aws", estate=estate, clients_factory=lambda ro: clients)


def _create_db(clients: ClientProvider, region: str, ident: str, multi_az: bool) -> None:
    clients.client("rds", region).create_db_instance(
        DBInstanceIdentifier=ident,
        Engine="postgres",
        DBInstanceClass="db.r6g.large",
        MasterUsername="app_admin",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=100,
        MultiAZ=multi_az,
    )


@mock_aws
def test_rds_reboot_failover_reboots_with_force_failover(estate) -> None:  # type: ignore[no-untyped-def]
    clients = ClientProvider()
    view = estate.primary
    _create_db(clients, view.region, view.database.identifier, multi_az=True)
    rec = clients.add_recorder(CallRecorder())
    fn = registry.get("action", "rds-reboot-failover").resolve("aws")  # type: ignore[union-attr]
    out = fn(_ctx(estate, clients), site="primary")
    assert out["instance"] == view.database.identifier and out["region"] == view.region
    reboots = [c for c in rec.mutating() if c.operation == "RebootDBInstance"]
    assert len(reboots) == 1 and reboots[0].params["ForceFailover"] is True


@mock_aws
def test_rds_reboot_failover_refuses_single_az(estate) -> None:  # type: ignore[no-untyped-def]
    clients = ClientProvider()
    view = estate.primary
    _create_db(clients, view.region, view.database.identifier, multi_az=False)
    rec = clients.add_recorder(CallRecorder())
    fn = registry.get("action", "rds-reboot-failover").resolve("aws")  # type: ignore[union-attr]
    with pytest.raises(BadInput) as info:
        fn(_ctx(estate, clients), site="primary")
    assert "not Multi-AZ" in info.value.message and info.value.region == view.region
    assert rec.mutating() == []


def test_aws_has_no_sandbox_only_implementation() -> None:
    prov = registry.get("action", "region-restore")
    assert prov is not None and prov.available("sandbox") and not prov.available("aws")
    with pytest.raises(registry.ProviderUnavailable) as info:
        prov.resolve("aws")
    assert "only on sandbox" in info.value.message
