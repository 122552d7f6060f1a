"""WAFv2 adapter: block/unblock CIDRs in a regional IP set, safely under concurrent edits.

WAF IP sets are updated by *replacing* the whole address list with the ``LockToken`` from the last
read. A concurrent editor makes the update fail with ``WAFOptimisticLockException`` (a lost update
prevented): we re-read the set and re-apply our change on top of the new entries, a few times.
Existing entries are always kept; adding an entry already there (or removing one that is absent)
is a no-op without an update call.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from dr.aws.calls import aws_errors, backoff
from dr.aws.session import ClientProvider, client_error_type
from dr.errors import BadInput, NotFound, OperationFailed, from_client_error

MAX_ADDRESSES = 10_000  # WAF quota: addresses per IP set
LOCK_RETRIES = 5

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(value: str) -> Network:
    """A CIDR as WAF stores it. A bare address becomes /32 (/128); host bits set is refused."""
    text = value.strip()
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise BadInput(
                f"{value!r} is not an IP address or CIDR ({exc})",
                resource=value,
                hint="give an address such as 203.0.113.7 or a CIDR such as 203.0.113.0/24",
            ) from None
        raise BadInput(
            f"{value!r} has host bits set: did you mean {loose.with_prefixlen}?",
            resource=value,
            hint=f"use {loose.with_prefixlen} (the network) or {text.split('/')[0]}/"
            f"{loose.max_prefixlen} (the single address)",
        ) from None
    if net.prefixlen == 0:
        raise BadInput(
            f"{value!r} would block every address; WAF refuses /0 and so do we",
            resource=value,
            hint="block a narrower range",
        )
    return net


def parse_cidrs(values: Iterable[str]) -> list[Network]:
    """Validate all inputs first (nothing is changed if any is bad); duplicates collapse."""
    out: list[Network] = []
    for value in values:
        net = parse_cidr(value)
        if net not in out:
            out.append(net)
    if not out:
        raise BadInput("no CIDR given", hint="pass one or more addresses/CIDRs, e.g. 203.0.113.7/32")
    return out


@dataclass(frozen=True)
class IpSet:
    name: str
    id: str
    region: str
    version: Literal["IPV4", "IPV6"]
    addresses: tuple[str, ...]
    lock_token: str = field(repr=False)
    arn: str = ""
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "region": self.region,
            "ip_address_version": self.version,
            "addresses": list(self.addresses),
        }


@dataclass(frozen=True)
class IpSetChange:
    name: str
    region: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]
    addresses: tuple[str, ...]
    updated: bool
    attempts: int
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ip_set": self.name,
            "region": self.region,
            "added": list(self.added),
            "removed": list(self.removed),
            "unchanged": list(self.unchanged),
            "addresses": list(self.addresses),
            "updated": self.updated,
            "attempts": self.attempts,
            "dry_run": self.dry_run,
        }


def find_ip_set_id(clients: ClientProvider, region: str, name: str, scope: str = "REGIONAL") -> str:
    client = clients.client("wafv2", region)
    marker: str | None = None
    with aws_errors(resource=f"WAF IP set {name}", region=region, action="list"):
        while True:
            kwargs: dict[str, Any] = {"Scope": scope, "Limit": 100}
            if marker:
                kwargs["NextMarker"] = marker
            raw = client.list_ip_sets(**kwargs)
            for item in raw.get("IPSets", []):
                if item["Name"] == name:
                    return str(item["Id"])
            marker = raw.get("NextMarker")
            if not marker or not raw.get("IPSets"):
                break
    raise NotFound(
        f"WAF IP set {name!r} ({scope}) does not exist in {region}",
        resource=name,
        region=region,
        hint="check site.edge.ipSetName in the stack file, or create the set with `pulumi up`",
    )


def get_ip_set(
    clients: ClientProvider, region: str, name: str, ip_set_id: str | None = None, scope: str = "REGIONAL"
) -> IpSet:
    ip_set_id = ip_set_id or find_ip_set_id(clients, region, name, scope)
    with aws_errors(resource=f"WAF IP set {name}", region=region, action="get"):
        raw = clients.client("wafv2", region).get_ip_set(Name=name, Scope=scope, Id=ip_set_id)
    s = raw["IPSet"]
    return IpSet(
        name=name,
        id=ip_set_id,
        region=region,
        version=s.get("IPAddressVersion", "IPV4"),
        addresses=tuple(s.get("Addresses", [])),
        lock_token=raw["LockToken"],
        arn=s.get("ARN", ""),
        description=s.get("Description"),
    )


def _matches_version(net: Network, version: str) -> bool:
    return (net.version == 4) == (version == "IPV4")


def change_ip_set(
    clients: ClientProvider,
    region: str,
    name: str,
    *,
    add: Iterable[Network] = (),
    remove: Iterable[Network] = (),
    scope: str = "REGIONAL",
    dry_run: bool = False,
    retries: int = LOCK_RETRIES,
    sleep: Callable[[float], Any] = time.sleep,
) -> IpSetChange:
    """Add/remove CIDRs keeping every other entry; retries on a lost update (lock token changed)."""
    add, remove = list(add), list(remove)
    lock_error = "WAFOptimisticLockException"
    client_error = client_error_type()
    ip_set_id: str | None = None
    pauses = backoff(first=0.1, cap=2.0)
    for attempt in range(1, retries + 1):
        current = get_ip_set(clients, region, name, ip_set_id, scope)
        ip_set_id = current.id
        wrong = [n for n in add + remove if not _matches_version(n, current.version)]
        if wrong:
            raise BadInput(
                f"WAF IP set {name!r} in {region} holds {current.version} addresses; "
                f"{', '.join(str(n) for n in wrong)} "
                f"{'is' if len(wrong) == 1 else 'are'} IPv{wrong[0].version}",
                resource=name,
                region=region,
                hint="block IPv4 and IPv6 addresses in an IP set of the matching version",
            )
        existing = {ipaddress.ip_network(a, strict=False): a for a in current.addresses}
        added = tuple(str(n) for n in add if n not in existing)
        removed = tuple(existing[n] for n in remove if n in existing)
        unchanged = tuple(str(n) for n in add if n in existing) + tuple(
            str(n) for n in remove if n not in existing
        )
        keep = [a for n, a in existing.items() if n not in set(remove)]
        final = tuple(keep + list(added))
        if len(final) > MAX_ADDRESSES:
            raise BadInput(
                f"WAF IP set {name!r} in {region} would hold {len(final)} addresses (quota {MAX_ADDRESSES})",
                resource=name,
                region=region,
                hint="aggregate addresses into wider CIDRs or unblock old entries",
            )
        if not added and not removed:
            return IpSetChange(name, region, (), (), unchanged, current.addresses, False, attempt, dry_run)
        if dry_run:
            return IpSetChange(name, region, added, removed, unchanged, final, False, attempt, True)
        try:
            # UpdateIPSet replaces every mutable field: a Description left out is cleared.
            described = {"Description": current.description} if current.description else {}
            clients.client("wafv2", region).update_ip_set(
                Name=name,
                Scope=scope,
                Id=current.id,
                Addresses=list(final),
                LockToken=current.lock_token,
                **described,
            )
        except client_error as err:
            code = getattr(err, "response", {}).get("Error", {}).get("Code")
            if code == lock_error and attempt < retries:
                sleep(next(pauses))
                continue
            if code == lock_error:
                raise OperationFailed(
                    f"WAF IP set {name!r} in {region} kept changing under us ({retries} lost updates)",
                    resource=name,
                    region=region,
                    code=code,
                    hint="someone else is editing it; retry in a moment",
                ) from None
            raise from_client_error(
                err, resource=f"WAF IP set {name}", region=region, action="update"
            ) from None
        return IpSetChange(name, region, added, removed, unchanged, final, True, attempt, False)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class WebAclSummary:
    name: str
    id: str
    region: str
    arn: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "region": self.region, "arn": self.arn}


def find_web_acl(
    clients: ClientProvider, region: str, name: str, scope: str = "REGIONAL"
) -> WebAclSummary | None:
    """The web ACL named ``name`` in ``region`` (None when absent). Added for `dr status`/`readiness`."""
    client = clients.client("wafv2", region)
    marker: str | None = None
    with aws_errors(resource=f"WAF web ACL {name}", region=region, action="list"):
        while True:
            kwargs: dict[str, Any] = {"Scope": scope, "Limit": 100}
            if marker:
                kwargs["NextMarker"] = marker
            raw = client.list_web_acls(**kwargs)
            for item in raw.get("WebACLs", []):
                if item["Name"] == name:
                    return WebAclSummary(name, str(item["Id"]), region, str(item.get("ARN", "")))
            marker = raw.get("NextMarker")
            if not marker or not raw.get("WebACLs"):
                return None
