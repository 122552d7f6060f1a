"""Label and field selectors, on their own (no cluster)."""

from __future__ import annotations

import pytest

from dr.sandbox.fakekube.label_selectors import field_selector_matches, label_selector_matches
from dr.sandbox.fakekube.resources import ApiError


def test_label_selector_terms() -> None:
    labels = {"app": "web", "tier": "fe"}
    assert label_selector_matches("app=web,tier in (fe, be),!gone", labels)
    assert not label_selector_matches("app!=web", labels)
    assert not label_selector_matches("tier notin (fe)", labels)
    assert label_selector_matches("", labels)
    assert label_selector_matches("app==web", labels)
    assert label_selector_matches("app", labels)
    assert not label_selector_matches("!app", labels)
    assert not label_selector_matches("missing", labels)
    assert label_selector_matches("missing!=x", labels)  # != also matches an absent key
    assert label_selector_matches("tier notin (be, db)", labels)
    assert not label_selector_matches("app=web,tier=be", labels)  # terms are ANDed
    assert label_selector_matches("app.kubernetes.io/name=x", {"app.kubernetes.io/name": "x"})


def test_label_selector_that_does_not_parse_is_400() -> None:
    with pytest.raises(ApiError) as err:
        label_selector_matches("app=web,=x", {"app": "web"})
    assert err.value.code == 400


def test_field_selector_terms() -> None:
    pod = {"metadata": {"name": "p1", "namespace": "shop"}, "status": {"phase": "Running"}}
    assert field_selector_matches("status.phase=Running", pod)
    assert field_selector_matches("metadata.name==p1,metadata.namespace=shop", pod)
    assert not field_selector_matches("status.phase!=Running", pod)
    assert field_selector_matches("spec.nodeName=", pod)  # an absent field compares as ""
    assert field_selector_matches("", pod)
    with pytest.raises(ApiError) as err:
        field_selector_matches("status.phase", pod)
    assert err.value.code == 400
