"""dr.procedures.ops*: input resolution, passwords/URLs, plans as data, triage degradation."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest

from dr.aws.secretsmanager import SecretValue
from dr.errors import BadInput, OperationFailed
from dr.kube import KubeFactory
from dr.procedures import ops
from dr.procedures.ops_security import new_password
from dr.procedures.ops_triage import triage
from dr.steps.ops_security_steps import with_password
from tests.unit.kube.estate_fixtures import clusters


def test_resolve_deployment_by_full_name_or_suffix(estate: Any) -> None:
    assert ops.resolve_deployment(estate, "api").name == "claude-deployment-api"
    assert ops.resolve_deployment(estate, "claude-deployment-worker").name == "claude-deployment-worker"
    with pytest.raises(BadInput) as err:
        ops.resolve_deployment(estate, "web", estate.primary)
    assert "claude-deployment-api" in (err.value.hint or "") and err.value.region == estate.primary.region


def test_resolve_sites(estate: Any) -> None:
    assert [v.region for v in ops.resolve_sites(estate, "both")] == list(estate.regions)
    assert ops.resolve_sites(estate, "secondary")[0].region == estate.secondary.region
    assert ops.resolve_sites(estate, estate.primary.region)[0].role == "primary"
    with pytest.raises(BadInput, match="not a site"):
        ops.resolve_sites(estate, "eu-north-9")


def test_flag_names(estate: Any) -> None:
    ops.check_flag(estate, "maintenance-mode", must_exist=True)
    ops.check_flag(estate, "brand-new", must_exist=False)
    with pytest.raises(BadInput, match="unknown feature flag"):
        ops.check_flag(estate, "brand-new", must_exist=True)
    with pytest.raises(BadInput, match="not a valid ConfigMap key"):
        ops.check_flag(estate, "bad key!", must_exist=False)


def test_new_password_is_strong_and_url_safe() -> None:
    seen = set()
    for _ in range(20):
        pw = new_password().reveal()
        assert len(pw) == 40 and not set(pw) - set(string.ascii_letters + string.digits + "-_~.")
        assert any(c.isdigit() for c in pw) and any(c.isupper() for c in pw)
        seen.add(pw)
    assert len(seen) == 20


def test_with_password_replaces_only_the_password() -> None:
    url = SecretValue("postgresql://app_admin:old@db.example:5432/app?sslmode=require")
    new = with_password(url, SecretValue("N3w-pw"))
    assert new.reveal() == "postgresql://app_admin:N3w-pw@db.example:5432/app?sslmode=require"
    assert "N3w" not in repr(new)
    with pytest.raises(BadInput):
        with_password(SecretValue("not a url"), SecretValue("x"))


def test_stop_writes_plan_is_data(estate: Any) -> None:
    plan = ops.stop_writes_plan(estate, estate.primary)
    assert plan.ids == [f"stop-{d.name}" for d in estate.app.writers]
    assert all(s.mutating and s.check and s.wait for s in plan.steps)
    ops_listed = [op.action for s in plan.steps for op in s.operations]
    assert ops_listed.count("PatchDeploymentScale") == len(estate.app.writers)


def test_triage_degrades_each_section_without_aws_or_cluster(estate: Any, tmp_path: Path) -> None:
    """No cluster answers and AWS is unreachable: every section reports its error, none raises."""
    from dr.aws.session import ClientProvider

    def refuse(_view: Any) -> Any:
        raise OperationFailed("the API of cluster x did not answer")

    clients = ClientProvider(endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=0.2)
    report = triage(estate, [estate.primary], clients, KubeFactory(connect=refuse))
    assert report.status == "error"
    assert len(report.sections) == 10 and all(s.status == "error" and s.error for s in report.sections)
    assert "could not collect" in report.markdown()


def test_triage_against_the_fake_cluster_only(estate: Any, tmp_path: Path) -> None:
    from dr.aws.session import ClientProvider

    with clusters(estate, tmp_path, capacity=5) as (_apis, kc):
        factory = KubeFactory(kubeconfig=kc)
        clients = ClientProvider(endpoint_url="http://127.0.0.1:9", max_attempts=1, connect_timeout=0.2)
        report = triage(estate, [estate.primary], clients, factory)
        factory.close()
    by = {s.name: s for s in report.sections}
    # 6 api + 2 workers on a 5-pod cluster: 3 Pending, FailedScheduling warnings.
    assert by["Deployments"].status == "warn" and "ready" in by["Deployments"].summary
    assert by["Warning events"].status == "warn" and "FailedScheduling" in by["Warning events"].summary
    assert by["Pods"].summary.startswith("5/8 ready")
    assert by["RDS"].status == "error"
