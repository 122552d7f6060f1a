"""The sandbox's fake AWS: moto's server behind a WSGI middleware (the realism layer) that adds
what moto lacks — statuses that change over time, the validations real AWS performs, faults and
hooks. Laid out as moto lays out a service, wire protocol apart from state:

* ``wire`` — who signed a request for which service, region and operation; error envelopes;
* ``faults``, ``transitions``, ``health_checks`` — injected faults, resources in transition, what
  Route53's checkers conclude;
* ``backends`` — moto's in-process state;
* ``middleware`` — :class:`~dr.sandbox.fakeaws.middleware.Realism`: WSGI, admin API, dispatch;
* ``<service>_ops`` — one module per AWS service, each exporting its ``HANDLERS`` table
  ``{(service, operation): handler}``; adding an operation to a fake touches only its module.
"""
