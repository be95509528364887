"""EFA hardware counters as a node-exporter textfile, written by a sidecar of the node-exporter DaemonSet.

Why: node-exporter's infiniband collector (v1.12.1) knows only the standard and mlx5 counters, so on an EFA device
it exports state and rate but not a single byte counter (prometheus/node_exporter v1.12.1
collector/infiniband_linux.go). The EFA kernel driver publishes its port statistics as files under
/sys/class/infiniband/<device>/ports/<port>/hw_counters/ (tx_bytes, rx_bytes, rx_drops, rdma_read_bytes,
rdma_read_wr_err, rdma_read_resp_bytes, ... : linux drivers/infiniband/hw/efa/efa_verbs.c EFA_DEFINE_PORT_STATS;
newer drivers add rdma_write_* and retrans_*). This module is the sidecar's program: `sidecar_command` ships this very
file's source as `python -c`, so what the tests exercise is what runs.

Exported (one series per device, port and driver counter; `lifespan` is a refresh period, not a counter):
    disagg_efa_port_hw_counter_total{device="rdmap...",port="1",counter="tx_bytes"}
Only devices bound to the `efa` driver are read: ConnectX devices on the same host have their own exporters.
"""

from __future__ import annotations

import os
import sys
import time

METRIC = "disagg_efa_port_hw_counter_total"
NOT_COUNTERS = {"lifespan"}
INTERVAL_SECONDS = 15


def _driver(root: str, device: str) -> str:
    link = os.path.join(root, device, "device", "driver")
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return ""


def collect(root: str) -> str:
    """Prometheus text exposition of every EFA port hw counter under `root` (/sys/class/infiniband)."""
    lines = [
        f"# HELP {METRIC} EFA port hardware counter from /sys/class/infiniband/<device>/ports/<port>/hw_counters.",
        f"# TYPE {METRIC} counter",
    ]
    try:
        devices = sorted(os.listdir(root))
    except OSError:
        devices = []
    for device in devices:
        if _driver(root, device) != "efa":
            continue
        ports_dir = os.path.join(root, device, "ports")
        try:
            ports = sorted(os.listdir(ports_dir))
        except OSError:
            continue
        for port in ports:
            hw = os.path.join(ports_dir, port, "hw_counters")
            try:
                names = sorted(os.listdir(hw))
            except OSError:
                continue
            for name in names:
                if name in NOT_COUNTERS:
                    continue
                try:
                    with open(os.path.join(hw, name)) as f:
                        value = int(f.read().strip())
                except (OSError, ValueError):
                    continue
                lines.append(f'{METRIC}{{device="{device}",port="{port}",counter="{name}"}} {value}')
    return "\n".join(lines) + "\n"


def write(root: str, out_dir: str) -> None:
    """Atomically replace <out_dir>/efa.prom: node-exporter must never read a half-written file."""
    target = os.path.join(out_dir, "efa.prom")
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        f.write(collect(root))
    os.replace(tmp, target)


def main(argv: list[str]) -> None:
    root, out_dir = argv[1], argv[2]
    while True:
        write(root, out_dir)
        time.sleep(INTERVAL_SECONDS)


def sidecar_command(root: str, out_dir: str) -> list[str]:
    """Container command running this file's own source, so no image has to be built for it."""
    with open(__file__) as f:
        source = f.read()
    return ["python3", "-u", "-c", source, root, out_dir]


if __name__ == "__main__":
    main(sys.argv)
