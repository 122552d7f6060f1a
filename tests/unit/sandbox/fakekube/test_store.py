"""The fake Kubernetes API's object store: validation, resourceVersion conflicts, secrets."""

from __future__ import annotations

import base64

import pytest

from dr.sandbox.fakekube import ApiError
from tests.unit.sandbox.fakekube.cluster_helpers import NS, add_deployment, make


def test_validation_and_conflicts() -> None:
    api, _ = make()
    add_deployment(api)
    with pytest.raises(ApiError) as err:
        api.set_scale(NS, "web", -1)
    assert err.value.code == 422
    with pytest.raises(ApiError) as err:
        add_deployment(api)
    assert err.value.code == 409
    stale = api.get("deployments", NS, "web")
    api.set_scale(NS, "web", 2)
    with pytest.raises(ApiError) as err:
        api.replace("deployments", NS, "web", stale)
    assert err.value.code == 409 and err.value.reason == "Conflict"
    with pytest.raises(ApiError) as err:
        api.get("deployments", NS, "nope")
    assert err.value.code == 404


def test_secret_string_data_is_folded_into_base64_data() -> None:
    api, _ = make()
    api.create("secrets", NS, {"metadata": {"name": "s"}, "stringData": {"k": "v1"}})
    assert api.get("secrets", NS, "s")["data"] == {"k": base64.b64encode(b"v1").decode()}
    assert api.secret_value(NS, "s", "k") == "v1"
    with pytest.raises(ApiError):
        api.patch("secrets", NS, "s", {"data": {"k": "not base64!"}}, "application/merge-patch+json")
