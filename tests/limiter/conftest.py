"""Fixtures for the limiter suite: stores under test, and Redis servers / a Redis Cluster of our own
(redis-server processes on free ports in a temp dir, stopped by pid at teardown)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guardrail.limiter import Limiter, Store, storage_from_uri

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free and valid too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55000 and _bindable(port + 10000):
            return port
    for port in range(30000 + random.randrange(10000), 55000):
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for redis-server")


def wait_port(port: int, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"redis-server on port {port} did not answer within {deadline}s")


class RedisProcess:
    """One redis-server we own: start, kill, restart on the same port."""

    def __init__(self, directory: Path, port: int, *extra: str) -> None:
        self.directory = directory
        self.port = port
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS_SERVER is not None
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = subprocess.Popen(
            [*args, "--daemonize", "no", "--dir", str(self.directory), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(self.port)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[Callable[[], RedisProcess]]:
    """Factory of private redis-server processes (for kill / restart tests)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    started: list[RedisProcess] = []

    def make() -> RedisProcess:
        proc = RedisProcess(tmp_path, free_port())
        proc.start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster of our own, as a ``redis+cluster://`` URI."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server / redis-cli are not installed")
    directory = tmp_path_factory.mktemp("cluster")
    nodes = []
    try:
        for _ in range(3):
            port = free_port()
            node = RedisProcess(
                directory,
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(directory / f"nodes-{port}.conf"),
            )
            node.start()
            nodes.append(node)
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        end = time.monotonic() + 15
        for node in nodes:
            while True:
                info = subprocess.run(
                    [REDIS_CLI, "-p", str(node.port), "cluster", "info"], capture_output=True, timeout=5
                ).stdout
                if b"cluster_state:ok" in info:
                    break
                if time.monotonic() > end:
                    raise RuntimeError("cluster did not reach cluster_state:ok")
                time.sleep(0.05)
        yield "redis+cluster://" + ",".join(addresses)
    finally:
        for node in nodes:
            node.stop()


STORES = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.cluster),
]


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(store_kind: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """Factory of fresh stores of the parametrised kind, each under a unique key prefix."""
    made: list[Store] = []
    url = None
    if store_kind == "redis":
        url = request.getfixturevalue("redis_url")
    elif store_kind == "cluster":
        url = request.getfixturevalue("cluster_url")

    def make() -> Store:
        if url is None:
            store = storage_from_uri("memory://")
        else:
            store = storage_from_uri(url, prefix=f"test:{uuid.uuid4().hex}:")
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def limiter(make_store: Callable[[], Store]) -> Limiter:
    return Limiter(make_store(), failure="closed")
