"""dr.kube.connect without a kubeconfig context: EKS endpoint + CA + IAM bearer token."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from dr import kube
from dr.aws.session import ClientProvider


def _eks_cluster_c1(tmp_path: Path) -> kube.Kube:
    """An EKS cluster c1 in moto (inside mock_aws) and a Kube for it without any kubeconfig."""
    boto3.client("eks", region_name="us-west-2").create_cluster(
        name="c1",
        roleArn="arn:aws:iam::123456789012:role/eks",
        resourcesVpcConfig={"subnetIds": ["subnet-1"]},
    )
    return kube.connect("c1", "us-west-2", kubeconfig=str(tmp_path / "none"), clients=ClientProvider())


def test_connect_uses_eks_endpoint_ca_and_token(tmp_path: Path) -> None:
    with mock_aws():
        k = _eks_cluster_c1(tmp_path)
        cfg: Any = k.api_client.configuration
        info = boto3.client("eks", region_name="us-west-2").describe_cluster(name="c1")["cluster"]
        assert cfg.host == info["endpoint"]
        assert Path(cfg.ssl_ca_cert).read_bytes() == base64.b64decode(info["certificateAuthority"]["data"])
        header = cfg.get_api_key_with_prefix("BearerToken")
        assert header.startswith("Bearer k8s-aws-v1.")
        assert k.source.startswith("EKS c1")


def test_every_request_carries_the_eks_bearer_token(tmp_path: Path) -> None:
    """The adapter sends its own JSON requests: each must still carry the refreshed IAM token."""
    with mock_aws():
        k = _eks_cluster_c1(tmp_path)
    sent: list[tuple[str, str, dict[str, str]]] = []

    class Answer:
        status, reason, headers = 200, "OK", {"content-type": "application/json"}
        data = b'{"items": [{"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]}'

        def read(self) -> bytes:
            return self.data

    def request(method: str, url: str, headers: dict[str, str] | None = None, **_: Any) -> Answer:
        sent.append((method, url, dict(headers or {})))
        return Answer()

    k.api_client.rest_client.request = request
    assert [n.name for n in k.nodes()] == ["n1"]
    method, url, headers = sent[0]
    assert method == "GET" and url.endswith("/api/v1/nodes"), (method, url)
    auth = {key.lower(): value for key, value in headers.items()}["authorization"]
    assert auth.startswith("Bearer k8s-aws-v1.")
