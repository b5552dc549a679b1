"""Ceph's S3 gateway for the tests: one monitor, one memstore OSD and radosgw on 127.0.0.1.

An opt-in (``--s3-backend=radosgw``, or ``python -m tests.radosgw_fixture`` to run one in
the foreground): it needs Debian's Ceph packages, which CI does not install (about 270 MB
and a minute of ``apt-get``)::

    apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd

Everything lives in a temporary directory: ``ceph.conf``, a cephx keyring, the monitor's
store, logs and admin sockets; the OSD keeps its data in memory (memstore). Every daemon
binds 127.0.0.1 only (``public addr``, ``cluster addr``, the monitor's address and
radosgw's ``beast endpoint``): the monitor and radosgw on ports chosen free, the OSD in
a 100-port range whose first port was free (it takes the first free ones in it). No
manager daemon: radosgw does not need one. An S3 user with the embedded server's
credentials is created with ``radosgw-admin``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Self

from s3_eventstore.demo.embedded import CREDENTIALS
from tests.seaweedfs_fixture import (
    LocalS3Server,
    ServerUnavailableError,
    die_with_parent,
    free_ports,
    stop_process,
    wait_until_writable,
)

PACKAGES = ("radosgw", "ceph-mon", "ceph-osd")
_BINARIES = (
    "monmaptool",
    "ceph-authtool",
    "ceph-mon",
    "ceph-osd",
    "ceph",
    "radosgw",
    "radosgw-admin",
)
_OSD_PORT_RANGE = 100
_KEYS = {
    "mon.": ["--cap", "mon", "allow *"],
    "client.admin": [
        "--cap",
        "mon",
        "allow *",
        "--cap",
        "osd",
        "allow *",
        "--cap",
        "mgr",
        "allow *",
    ],
    "osd.0": ["--cap", "mon", "allow profile osd", "--cap", "osd", "allow *"],
    "client.rgw": ["--cap", "mon", "allow rw", "--cap", "osd", "allow rwx"],
}


def _conf(directory: Path, fsid: str, mon: str, osd_port: int, s3_port: int) -> str:
    return f"""\
[global]
fsid = {fsid}
mon host = {mon}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind port min = {osd_port}
ms bind port max = {osd_port + _OSD_PORT_RANGE - 1}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {directory}/keyring
run dir = {directory}/run
admin socket = {directory}/run/$name.asok
log file = {directory}/log/$name.log
pid file = {directory}/run/$name.pid
mon data = {directory}/mon/$id
osd data = {directory}/osd/$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 1
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{s3_port}
rgw dns name = 127.0.0.1
"""


def _free_range(width: int) -> int:
    """A port whose next ``width`` ports are all free now (well below the ephemeral range
    where clients' ports come from)."""
    import socket

    for start in range(20000, 32000 - width, width):
        with contextlib.ExitStack() as stack:
            try:
                for port in range(start, start + width):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return start
    raise ServerUnavailableError(f"no {width} consecutive free ports for the OSD")


def installed() -> bool:
    """Are Ceph's monitor, OSD and gateway programs on PATH?"""
    return all(shutil.which(binary) is not None for binary in _BINARIES)


class Radosgw(LocalS3Server):
    """A throwaway Ceph cluster with radosgw; a context manager that starts and stops it."""

    name = "radosgw"
    atomic_conditional_writes = True
    """Two concurrent ``If-None-Match: *`` PUTs of one key: exactly one succeeds."""

    def __init__(self, directory: Path | None = None) -> None:
        self._given = directory
        self._directory: Path | None = None
        self._processes: list[subprocess.Popen[bytes]] = []

    def _run(self, *args: str) -> str:
        assert self._directory is not None
        try:
            done = subprocess.run(
                args, cwd=self._directory, check=True, capture_output=True, timeout=120
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            output = (getattr(err, "stderr", b"") or b"")[-800:].decode(errors="replace")
            raise ServerUnavailableError(f"{' '.join(args)} failed: {output}") from err
        return done.stdout.decode()

    def _daemon(self, *args: str) -> subprocess.Popen[bytes]:
        assert self._directory is not None
        name = Path(args[0]).name
        with (self._directory / "log" / f"{name}.out").open("ab") as out:
            process = subprocess.Popen(
                [*args, "-f"],  # foreground: this object owns the process
                cwd=self._directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call, see there
            )
        self._processes.append(process)
        return process

    def start(self) -> Self:
        """Create the cluster, start its daemons, create the S3 user, wait for S3.

        Raises:
            ServerUnavailableError: Ceph is not installed, or did not come up.
        """
        missing = [binary for binary in _BINARIES if shutil.which(binary) is None]
        if missing:
            raise ServerUnavailableError(
                f"{', '.join(missing)} not installed: apt-get install {' '.join(PACKAGES)}"
            )
        started = time.monotonic()
        if self._given is not None:
            self._given.mkdir(parents=True, exist_ok=True)
            directory = self._given
        else:
            directory = Path(tempfile.mkdtemp(prefix="s3es-radosgw-"))
        self._directory = directory
        try:
            self._start(directory)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started
        return self

    def _start(self, directory: Path) -> None:
        for sub in ("run", "log", "mon/a", "osd/0"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        mon_v2, mon_v1, s3_port = free_ports(3)
        mon = f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]"
        conf = directory / "ceph.conf"
        conf.write_text(_conf(directory, fsid, mon, _free_range(_OSD_PORT_RANGE), s3_port))
        keyring = str(directory / "keyring")
        self._run("ceph-authtool", "--create-keyring", keyring)
        for entity, caps in _KEYS.items():
            self._run("ceph-authtool", keyring, "--gen-key", "-n", entity, *caps)
        monmap = str(directory / "monmap")
        self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", mon, monmap)
        self._run(
            "ceph-mon",
            "-c",
            str(conf),
            "--mkfs",
            "-i",
            "a",
            "--monmap",
            monmap,
            "--keyring",
            keyring,
        )
        self._daemon("ceph-mon", "-c", str(conf), "-i", "a")
        osd_uuid = str(uuid.uuid4())
        # Waits for the monitor (the ceph CLI retries until it answers).
        self._run("ceph", "-c", str(conf), "--connect-timeout", "60", "osd", "new", osd_uuid)
        self._run("ceph-osd", "-c", str(conf), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self._daemon("ceph-osd", "-c", str(conf), "-i", "0")
        gateway = self._daemon("radosgw", "-c", str(conf), "-n", "client.rgw")
        self._run(
            "radosgw-admin",
            "-c",
            str(conf),
            "user",
            "create",
            "--uid=tests",
            "--display-name=s3-eventstore tests",
            f"--access-key={CREDENTIALS['aws_access_key_id']}",
            f"--secret={CREDENTIALS['aws_secret_access_key']}",
        )
        self.endpoint_url = f"http://127.0.0.1:{s3_port}"
        wait_until_writable(self.endpoint_url, gateway, directory / "log" / "client.rgw.log")

    def stop(self) -> None:
        """Stop every daemon (radosgw first) and remove the temporary directory."""
        for process in reversed(self._processes):
            stop_process(process)
        self._processes.clear()
        if self._given is None and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


def main() -> None:
    """Run radosgw in the foreground until Ctrl-C (for trying things by hand)."""
    Radosgw().serve_until_interrupted("radosgw")


if __name__ == "__main__":
    main()
