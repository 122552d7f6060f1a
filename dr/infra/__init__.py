"""Pulumi components of the estate (imported only by ``__main__.py``, tests and scripts).

``dr.infra.EstateStack`` builds one region from a :class:`dr.topology.StackConfig`; the components
(network, cluster, database, cache, edge, dns, workload, tooling) are in their own modules.
"""

from dr.infra.database import SecretReplica
from dr.infra.estate import EstateArgs, EstateStack, PrimaryRefs, SharedRefs

__all__ = ["EstateArgs", "EstateStack", "PrimaryRefs", "SecretReplica", "SharedRefs"]
