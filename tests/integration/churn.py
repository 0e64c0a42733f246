"""Short-lived containers by the hundred, and what a process holds: for the tests and
benchmarks of what containers leave behind (grafana/loki#17718).

Containers are created and started through the Engine API on its unix socket (the CLI
costs ~0.2 s a container), 8 at a time, each removed by the engine when it exits.
"""

from __future__ import annotations

import concurrent.futures
import os
import urllib.request

import httpx

IMAGE = "logdriver-test"


def metric_sum(metrics: str, name: str) -> float:
    """The sum of a metric's samples (every label set)."""
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.split("{")[0].split(" ")[0] == name)


def start_short_lived(engine_socket: str, driver: str, opts: dict[str, str], count: int, image: str = IMAGE) -> None:
    """``count`` containers of one echo each, logging with ``driver`` and ``opts``."""
    body = {
        "Image": image,
        "Cmd": ["echo", "short-lived"],
        "HostConfig": {"LogConfig": {"Type": driver, "Config": opts}, "AutoRemove": True, "NetworkMode": "none"},
    }

    def one(_: int) -> None:
        with httpx.Client(transport=httpx.HTTPTransport(uds=engine_socket), base_url="http://docker") as api:
            created = api.post("/containers/create", json=body, timeout=60)
            created.raise_for_status()
            api.post(f"/containers/{created.json()['Id']}/start", timeout=60).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def fds_and_rss(pid: int) -> tuple[int, int]:
    """(open descriptors, resident bytes) of a process now."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) << 10 for line in status if line.startswith("VmRSS:"))
    return fds, rss


def peak_rss(pid: int) -> int:
    """A process's peak resident bytes since it started."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) << 10 for line in status if line.startswith("VmHWM:"))
