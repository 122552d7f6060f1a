"""EKS adapter: scaling bounds, update + wait (UPDATING then ACTIVE), IAM token format."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from dr.aws import eks
from dr.aws.session import ClientProvider
from dr.errors import BadInput, NotFound, TimeoutExpired

REGION = "us-east-1"


@pytest.fixture
def cluster() -> Any:
    with mock_aws():
        c = boto3.client("eks", region_name=REGION)
        c.create_cluster(
            name="c1",
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": ["subnet-1"]},
        )
        c.create_nodegroup(
            clusterName="c1",
            nodegroupName="ng",
            scalingConfig={"minSize": 1, "maxSize": 5, "desiredSize": 1},
            subnets=["subnet-1"],
            nodeRole="arn:aws:iam::123456789012:role/nodes",
        )
        yield


@pytest.mark.parametrize(
    ("scaling", "needle"),
    [
        (eks.Scaling(3, 2, 2), "min <= desired <= max"),
        (eks.Scaling(1, 5, 6), "min <= desired <= max"),
        (eks.Scaling(-1, 5, 1), "negative"),
        (eks.Scaling(0, 0, 0), "at least 1"),
        (eks.Scaling(1, 451, 2), "EKS limit"),
    ],
)
def test_check_scaling_refuses(scaling: eks.Scaling, needle: str) -> None:
    with pytest.raises(BadInput, match=needle) as err:
        eks.check_scaling(scaling, cluster="c1", nodegroup="ng", region=REGION)
    assert err.value.region == REGION and err.value.exit_code == 2


def test_update_then_wait_sees_updating_before_active(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clients = ClientProvider()
    target = eks.Scaling(2, 10, 4)
    update_id = eks.update_nodegroup_scaling(clients, REGION, "c1", "ng", target)
    assert isinstance(update_id, str) and update_id, update_id  # EKS names the update it started
    assert eks.update_nodegroup_scaling(clients, REGION, "c1", "ng", target) is None  # already there
    # Real EKS reports UPDATING for a while (moto never does): two polls UPDATING, then ACTIVE.
    statuses = iter(["UPDATING", "UPDATING"])
    real = eks.describe_nodegroup
    seen: list[str] = []

    def fake(*args: Any) -> eks.NodegroupInfo:
        info = eks.NodegroupInfo(**{**real(*args).__dict__, "status": next(statuses, "ACTIVE")})
        seen.append(info.status)
        return info

    monkeypatch.setattr(eks, "describe_nodegroup", fake)
    sleeps: list[float] = []
    info = eks.wait_nodegroup_updated(clients, REGION, "c1", "ng", target, settle=1000, sleep=sleeps.append)
    assert seen == ["UPDATING", "UPDATING", "ACTIVE"] and info.scaling == target
    assert sleeps and sleeps == sorted(sleeps)  # adaptive: intervals grow


def test_wait_times_out_when_config_never_applies(cluster: Any) -> None:
    now = {"t": 0.0}

    def sleep(s: float) -> None:
        now["t"] += s

    with pytest.raises(TimeoutExpired, match="c1/ng"):
        eks.wait_nodegroup_updated(
            ClientProvider(),
            REGION,
            "c1",
            "ng",
            eks.Scaling(2, 10, 4),
            timeout=30,
            clock=lambda: now["t"],
            sleep=sleep,
        )


def test_describe_missing_nodegroup_is_not_found(cluster: Any) -> None:
    with pytest.raises(NotFound):
        eks.describe_nodegroup(ClientProvider(), REGION, "c1", "nope")


def test_cluster_token_is_a_presigned_sts_url_with_the_cluster_header(cluster: Any) -> None:
    token = eks.cluster_token(ClientProvider(), REGION, "c1")
    assert token.startswith("k8s-aws-v1.")
    raw = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.hostname == f"sts.{REGION}.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0]
    assert query["X-Amz-Expires"] == ["60"]
