"""Test hosts: Linux network namespaces on one private bridge.

One bridge in the root namespace carries two private addresses: the database
address (translated by nftables to the machine's PostgreSQL, which listens
on localhost only) and the broker address (a private redis-server bound to it).
Each test host is a namespace joined to the bridge by a veth pair; its
processes are the Procfile's command lines run with ``ip netns exec``.

- ``Host.link_down()`` cuts the host's cable (packets vanish, no RST);
- ``Host.broker_unreachable()`` routes the broker address to nowhere from
  that host only (the database stays reachable);
- ``Host.kill_all()`` SIGKILLs every process in the namespace (host lost).

Nothing touches the machine's own services; teardown deletes every namespace,
link and process it made, even after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.workers import ROOT, wait_until

SUBNET = os.environ.get("MULTIHOST_SUBNET", "10.231.0")
DB_ADDRESS = f"{SUBNET}.1"
BROKER_ADDRESS = f"{SUBNET}.2"
TAG = f"mh{os.getpid() % 10000}"
_PROGRAMS = {
    "celery": [sys.executable, "-m", "celery"],
    "gunicorn": [sys.executable, "-m", "gunicorn"],
}


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)  # noqa: S607


def namespaces_unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = f"{TAG}-probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    if shutil.which("nft") is None:
        return "nftables is not installed (apt-get install nftables)"
    return None


def procfile_argv(kind: str) -> list[str]:
    """The Procfile's command line for ``kind`` (web, worker, beat), run with
    this interpreter so the namespace uses the project's virtualenv."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            program, *args = shlex.split(command)
            return [*_PROGRAMS.get(program, [program]), *args]
    raise KeyError(f"no {kind!r} line in the Procfile")


class Network:
    """The bridge, its two addresses, the database translation and the broker."""

    def __init__(self, *, database_port: int = 5432) -> None:
        self.bridge = f"{TAG}br"
        self.table = f"{TAG}db"
        self.database_port = database_port
        self.processes: list[subprocess.Popen] = []
        self.broker_port = 6379
        self.broker_url = f"redis://{BROKER_ADDRESS}:{self.broker_port}/0"

    def start(self) -> Network:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{DB_ADDRESS}/24", "dev", self.bridge)
        ip("addr", "add", f"{BROKER_ADDRESS}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        redis = [
            "redis-server", "--bind", BROKER_ADDRESS, "--port", str(self.broker_port),
            "--save", "", "--appendonly", "no", "--dir", "/tmp", "--protected-mode", "no",
        ]  # fmt: skip
        self._database_translate()
        self.processes.append(
            subprocess.Popen(  # noqa: S603
                redis,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        for address, port in ((DB_ADDRESS, self.database_port), (BROKER_ADDRESS, self.broker_port)):
            if not wait_until(lambda a=address, p=port: _answers(a, p), timeout=10, interval=0.05):
                raise RuntimeError(f"nothing answers at {address}:{port}")
        return self

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        subprocess.run(["nft", "delete", "table", "ip", self.table], check=False)  # noqa: S607
        ip("link", "del", self.bridge, check=False)

    def _database_translate(self) -> None:
        """Connections to the database address reach the machine's PostgreSQL
        itself, address-translated (nftables), not through a forwarding
        process: the server's own socket faces the host, as in production, so
        a cut cable is the server's dead peer (a forward would keep the
        server's side alive). DNAT to 127.0.0.1 needs the bridge to route to
        localhost; the SNAT lets the server's pg_hba (127.0.0.1) accept it. The
        output chain serves this namespace's own readiness check."""
        port = self.database_port
        rules = f"""
table ip {self.table} {{
  chain pre {{
    type nat hook prerouting priority -100;
    ip daddr {DB_ADDRESS} tcp dport {port} dnat to 127.0.0.1:{port}
  }}
  chain out {{
    type nat hook output priority -100;
    ip daddr {DB_ADDRESS} tcp dport {port} dnat to 127.0.0.1:{port}
  }}
  chain inp {{
    type nat hook input priority 100;
    ip saddr {SUBNET}.0/24 ip daddr 127.0.0.1 tcp dport {port} snat to 127.0.0.1
  }}
}}
"""
        Path(f"/proc/sys/net/ipv4/conf/{self.bridge}/route_localnet").write_text("1")
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)  # noqa: S607


class Host:
    """One machine: a namespace with a veth cable into the bridge."""

    def __init__(self, *, network: Network, name: str, index: int) -> None:
        self.network = network
        self.name = name
        self.namespace = f"{TAG}-{name}"
        self.address = f"{SUBNET}.{10 + index}"
        self.outside = f"{TAG}{name}o"[:15]
        self.inside = f"{TAG}{name}i"[:15]
        self.processes: list[subprocess.Popen] = []

    def create(self) -> Host:
        ip("netns", "add", self.namespace)
        ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        ip("link", "set", self.inside, "netns", self.namespace)
        ip("link", "set", self.outside, "master", self.network.bridge)
        ip("link", "set", self.outside, "up")
        self.exec_ip("addr", "add", f"{self.address}/24", "dev", self.inside)
        self.exec_ip("link", "set", self.inside, "up")
        self.exec_ip("link", "set", "lo", "up")
        return self

    def exec_ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return ip("netns", "exec", self.namespace, "ip", *args, check=check)

    def spawn(self, argv: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen:
        """Start ``argv`` inside the namespace, its own process group, output to ``log_path``."""
        log = log_path.open("ab")
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            ["ip", "netns", "exec", self.namespace, *argv],  # noqa: S607
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        out = ip("netns", "pids", self.namespace, check=False)
        return [int(pid) for pid in out.stdout.split()]

    def link_down(self) -> None:
        ip("link", "set", self.outside, "down")

    def link_up(self) -> None:
        ip("link", "set", self.outside, "up")

    def broker_unreachable(self) -> None:
        self.exec_ip("route", "add", "unreachable", f"{BROKER_ADDRESS}/32")

    def broker_reachable(self) -> None:
        self.exec_ip("route", "del", "unreachable", f"{BROKER_ADDRESS}/32", check=False)

    def kill_all(self) -> int:
        """SIGKILL every process in the namespace: the machine is gone."""
        killed = 0
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                continue
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        return killed

    def terminate(self) -> None:
        """Ask every process of this host to stop (SIGTERM to its group)."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)

    def stop(self, *, deadline: float) -> None:
        """After :meth:`terminate`: wait for every process until ``deadline``
        (a ``time.monotonic()``), kill what is left, and remove the host.

        A cluster terminates all its hosts first and stops them against one
        deadline: a worker's warm shutdown waiting on its task then no longer
        delays the next host's (one after another, 20 s a process, this was
        42 s of a scenario's teardown)."""
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        self.kill_all()
        ip("link", "del", self.outside, check=False)
        ip("netns", "del", self.namespace, check=False)


def _answers(address: str, port: int) -> bool:
    import socket

    try:
        socket.create_connection((address, port), timeout=0.5).close()
    except OSError:
        return False
    return True
