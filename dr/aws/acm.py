"""ACM adapter: the certificates covering a name, with status and days to expiry."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider

_STATUSES = [
    "PENDING_VALIDATION",
    "ISSUED",
    "INACTIVE",
    "EXPIRED",
    "VALIDATION_TIMED_OUT",
    "REVOKED",
    "FAILED",
]
# ListCertificates returns only RSA_1024/RSA_2048 certificates unless keyTypes asks for others
# (botocore acm Filters.keyTypes): an EC or RSA_4096 certificate would look missing.
KEY_TYPES = [
    "RSA_1024",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "EC_prime256v1",
    "EC_secp384r1",
    "EC_secp521r1",
]


def _utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def covers(pattern: str, name: str) -> bool:
    """Does a certificate name (possibly ``*.example.com``) cover ``name``?"""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


@dataclass(frozen=True)
class Certificate:
    arn: str
    region: str
    domain: str
    names: tuple[str, ...]
    status: str
    not_after: dt.datetime | None
    in_use: bool
    renewal_eligibility: str | None

    def days_left(self, now: dt.datetime) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - now).total_seconds() / 86400.0

    def to_dict(self, now: dt.datetime | None = None) -> dict[str, Any]:
        days = self.days_left(now or dt.datetime.now(dt.UTC))
        return {
            "arn": self.arn,
            "region": self.region,
            "domain": self.domain,
            "names": list(self.names),
            "status": self.status,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "days_left": None if days is None else round(days, 1),
            "in_use": self.in_use,
            "renewal_eligibility": self.renewal_eligibility,
        }


def certificates_for(clients: ClientProvider, region: str, name: str) -> list[Certificate]:
    """Every certificate in ``region`` whose domain or SANs cover ``name``."""
    client = clients.client("acm", region)
    out: list[Certificate] = []
    with aws_errors(resource=f"ACM certificates for {name}", region=region, action="list"):
        token: str | None = None
        arns: list[str] = []
        while True:
            kwargs: dict[str, Any] = {
                "CertificateStatuses": _STATUSES,
                "Includes": {"keyTypes": KEY_TYPES},
                "MaxItems": 100,
            }
            if token:
                kwargs["NextToken"] = token
            raw = client.list_certificates(**kwargs)
            for summary in raw.get("CertificateSummaryList", []):
                sans = summary.get("SubjectAlternativeNameSummaries") or [summary.get("DomainName", "")]
                if any(covers(s, name) for s in [summary.get("DomainName", ""), *sans]):
                    arns.append(summary["CertificateArn"])
            token = raw.get("NextToken")
            if not token:
                break
        for arn in arns:
            cert = client.describe_certificate(CertificateArn=arn)["Certificate"]
            out.append(
                Certificate(
                    arn=arn,
                    region=region,
                    domain=cert.get("DomainName", ""),
                    names=tuple(cert.get("SubjectAlternativeNames") or [cert.get("DomainName", "")]),
                    status=cert.get("Status", "UNKNOWN"),
                    not_after=_utc(cert.get("NotAfter")),
                    in_use=bool(cert.get("InUseBy")),
                    renewal_eligibility=cert.get("RenewalEligibility"),
                )
            )
    return out
