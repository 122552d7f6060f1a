"""Where Kubernetes clients come from: one kubeconfig rule (explicit → sandbox → default) and one
factory every command, procedure and drill uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dr.kube import KubeFactory, resolve_kubeconfig


def test_explicit_kubeconfig_wins_on_every_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env"))
    assert resolve_kubeconfig("aws", "/x/kc") == "/x/kc"
    assert resolve_kubeconfig("sandbox", "/x/kc") == "/x/kc"


def test_sandbox_kubeconfig_comes_from_its_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps({"aws_endpoint": "http://127.0.0.1:1", "kubeconfig": str(tmp_path / "kc")})
    )
    monkeypatch.setenv("DR_SANDBOX_DIR", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env"))
    assert resolve_kubeconfig("sandbox") == str(tmp_path / "kc")


def test_aws_uses_the_first_kubeconfig_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/a/first:/b/second")
    assert resolve_kubeconfig("aws") == "/a/first"


def test_factory_for_target_carries_the_resolved_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", "/a/kc")
    factory = KubeFactory.for_target("aws", read_only=True)
    assert (factory.kubeconfig, factory.read_only) == ("/a/kc", True)
    assert KubeFactory.for_target("aws", kubeconfig="/b/kc").kubeconfig == "/b/kc"
