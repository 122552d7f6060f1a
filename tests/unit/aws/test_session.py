from __future__ import annotations

import pytest
from moto import mock_aws

from dr.aws.session import CallRecorder, ClientProvider, ReadOnlyViolation, is_mutating, safe_params


@pytest.mark.parametrize(
    ("op", "mutating"),
    [
        ("PromoteReadReplica", True),
        ("DescribeDBInstances", False),
        ("ListHealthChecks", False),
        ("ChangeResourceRecordSets", True),
        ("UpdateHealthCheck", True),
        ("GetItem", False),
        ("PutItem", True),
        ("TestFailover", True),
    ],
)
def test_is_mutating(op: str, mutating: bool) -> None:
    assert is_mutating(op) is mutating


def test_safe_params_drops_secrets_keeps_ids() -> None:
    out = safe_params(
        {
            "DBInstanceIdentifier": "db1",
            "MasterUserPassword": "hunter2",
            "SecretString": '{"password": "hunter2"}',
            "Tags": [{"Key": "a", "Value": "b"}],
        }
    )
    assert out == {"DBInstanceIdentifier": "db1"}
    assert "hunter2" not in repr(out)


@mock_aws
def test_recorder_sees_calls_and_read_only_refuses_mutations() -> None:
    rec = CallRecorder()
    provider = ClientProvider(read_only=True)
    provider.add_recorder(rec)
    rds = provider.client("rds", "us-east-1")
    rds.describe_db_instances()
    with pytest.raises(ReadOnlyViolation, match="CreateDBSnapshot"):
        rds.create_db_snapshot(DBInstanceIdentifier="x", DBSnapshotIdentifier="s")
    ops = [(c.operation, c.mutating) for c in rec.calls]
    assert ops == [("DescribeDBInstances", False), ("CreateDBSnapshot", True)]
    # the refused call never reached the API: nothing was created
    writable = ClientProvider().client("rds", "us-east-1")
    assert writable.describe_db_snapshots()["DBSnapshots"] == []


def test_clients_are_cached_per_service_and_region() -> None:
    provider = ClientProvider()
    assert provider.client("rds", "us-east-1") is provider.client("rds", "us-east-1")
    assert provider.client("rds", "us-east-1") is not provider.client("rds", "us-west-2")
    cfg = provider.client("rds", "us-east-1").meta.config
    assert cfg.retries["mode"] == "standard"


def test_aws_retry_mode_chooses_another_retry_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from dr.errors import BadInput

    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    assert ClientProvider().client("rds", "us-east-1").meta.config.retries["mode"] == "adaptive"
    monkeypatch.setenv("AWS_RETRY_MODE", "fastest")
    with pytest.raises(BadInput, match="AWS_RETRY_MODE") as err:
        ClientProvider()
    assert err.value.exit_code == 2


def test_providers_share_one_loader_so_models_are_parsed_once_per_process() -> None:
    """A command builds several providers (run, read-only, lock, journal mirror): the second one
    must not parse endpoints.json and the service models again."""
    from unittest import mock

    import botocore.loaders

    first, second = ClientProvider(), ClientProvider(read_only=True)
    first.client("rds", "us-east-1")
    with mock.patch.object(botocore.loaders.JSONFileLoader, "load_file", side_effect=AssertionError):
        # already cached by the shared loader: neither the model nor the endpoints are read again
        client = second.client("rds", "eu-west-1")
    loaders = {id(p._boto_session()._session.get_component("data_loader")) for p in (first, second)}
    assert len(loaders) == 1
    with mock_aws():
        assert client.describe_db_instances()["DBInstances"] == []


def test_process_wide_sharing_reaches_every_botocore_session_without_growing_its_paths() -> None:
    """The sandbox's server and the test suite share one loader with moto's own sessions too
    (tests/conftest.py turns it on); boto3 re-appending its data path must not grow the list."""
    import boto3

    from dr.aws.session import share_loader_process_wide

    share_loader_process_wide()
    share_loader_process_wide()  # idempotent
    sessions = [boto3.session.Session() for _ in range(5)]
    loaders = {id(s._session.get_component("data_loader")) for s in sessions}
    assert len(loaders) == 1
    paths = sessions[0]._session.get_component("data_loader").search_paths
    assert len(paths) == len(set(paths))
    assert ClientProvider()._boto_session()._session.get_component("data_loader") is (
        sessions[0]._session.get_component("data_loader")
    )


def test_moto_eks_still_checks_role_arn_partitions_from_a_list_built_once() -> None:
    """cache_moto_partitions (the sandbox's server, the test suite) keeps moto's role ARN check —
    an unknown partition is still refused — without a boto3 session per CreateCluster."""
    from unittest import mock

    import boto3
    from moto.eks.exceptions import InvalidParameterException
    from moto.eks.utils import validate_role_arn

    from dr.aws.session import cache_moto_partitions

    cache_moto_partitions()
    validate_role_arn("arn:aws:iam::123456789012:role/eks")  # builds the list (at most one session)
    with mock.patch.object(boto3.session.Session, "__init__", side_effect=AssertionError("a session")):
        validate_role_arn("arn:aws-cn:iam::123456789012:role/eks")
        with pytest.raises(InvalidParameterException):
            validate_role_arn("arn:nowhere:iam::123456789012:role/eks")
