"""A real PostgreSQL server for the tests of the shared index.

``NECRO_PG_URL`` (a role allowed to create databases) when set; otherwise a
throwaway cluster made with the machine's ``initdb``/``pg_ctl``
(``/usr/lib/postgresql/<version>/bin``; ``.ci/run`` installs the Debian package
when they are missing), listening on a free port of 127.0.0.1 with its unix
socket in a temporary folder. As root the binaries run as the ``postgres`` user
(PostgreSQL refuses to run as root) on a data folder that user owns. Durability
is switched off (``fsync=off``): the cluster is thrown away after the session.

Each test gets a fresh database, created from a template.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .cloud_servers import free_port

PG_URL_ENV = "NECRO_PG_URL"
ROLE = "necro"
STARTUP_TIMEOUT = 60


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    on_path = shutil.which("initdb")
    if found:
        return Path(found[-1]).parent
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL binaries (initdb, pg_ctl) not found: install the 'postgresql' package "
        f"(.ci/run does) or set {PG_URL_ENV} to a server where this role may create databases"
    )


@dataclass
class PostgresServer:
    """A PostgreSQL server; ``admin_url`` reaches its maintenance database."""

    admin_url: str
    bindir: Path | None = None
    datadir: Path | None = None
    port: int = 0
    _as_postgres: bool = False
    _template: str = field(default="", init=False)

    # -- life cycle --------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[PostgresServer]:
        external = os.environ.get(PG_URL_ENV)
        if external:
            server = cls(external)
            server._make_template()
            try:
                yield server
            finally:
                server._drop(server._template)
            return
        bindir = _binaries()
        as_postgres = os.geteuid() == 0
        top = Path(tempfile.mkdtemp(prefix="necro-pg-"))
        datadir = top / "data"
        try:
            if as_postgres:
                top.chmod(0o755)
                shutil.chown(top, "postgres", "postgres")
            port = free_port()
            server = cls(
                f"postgresql://{ROLE}@127.0.0.1:{port}/postgres",
                bindir,
                datadir,
                port,
                as_postgres,
            )
            server._run(
                "initdb",
                "-D",
                str(datadir),
                "-U",
                ROLE,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            )
            server.start()
            server._make_template()
            try:
                yield server
            finally:
                server.stop("immediate")
        finally:
            shutil.rmtree(top, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        assert self.bindir is not None
        command = [str(self.bindir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(
            command,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=STARTUP_TIMEOUT,
        )

    def start(self) -> None:
        """Start the throwaway cluster (and wait until it accepts connections)."""
        assert self.datadir is not None
        options = (
            f"-p {self.port} -k {self.datadir.parent} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.datadir.parent / "server.log"),
            "-w",
            "-t",
            str(STARTUP_TIMEOUT),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the throwaway cluster; every connection is cut. ``fast`` (a restart in
        a test) flushes commits first: with ``synchronous_commit=off`` an ``immediate``
        stop (the end of the session) may lose the last ones."""
        assert self.datadir is not None
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    @property
    def restartable(self) -> bool:
        """Whether this fixture controls the server process (not ``NECRO_PG_URL``)."""
        return self.datadir is not None

    def cut_connections(self, database: str) -> None:
        """Terminate every session on ``database`` (what a server restart does to them)."""
        with self._admin() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )

    # -- databases ---------------------------------------------------------------------

    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True)

    def _make_template(self) -> None:
        self._template = f"necro_template_{uuid.uuid4().hex[:8]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{self._template}"')

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"necro_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url`` (cutting its remaining sessions)."""
        self._drop(url.rpartition("/")[2])

    def _drop(self, name: str) -> None:
        deadline = time.monotonic() + 10
        while True:
            with self._admin() as conn:
                try:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
            time.sleep(0.1)
