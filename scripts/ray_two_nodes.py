"""Two Ray nodes on 127.0.0.1, started as on a real cluster (`ray start --head`, then `ray start --address`
for the second raylet), one `stylestream convert --ray HEAD` of two short clips and a long one, and a
check that both nodes converted frames and every output has its input's frame count.

    python scripts/ray_two_nodes.py [--out DIR]

Prints the convert summary; exit 0 on success, 1 otherwise. Each node is one `ray start --block`
process started here, stopped at the end by its pid (SIGTERM: it stops the Ray processes it started),
and also if this script is killed (the kernel sends the SIGTERM then). Workers import this checkout
(PYTHONPATH is set for the nodes).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from streamer.democlip import write_demo_clip

ROOT = Path(__file__).resolve().parents[1]

RAY = str(Path(sys.executable).with_name("ray"))
WORKER_LINE = re.compile(r"^\s+(w\d+@\S+) node (\w+): (\d+) frames in (\d+) units", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: SIGTERM when this script dies, even by SIGKILL (Linux), so no Ray node outlives it."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    cmd = [RAY, "start", *args, "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats",
           "--block"]
    print("$", " ".join(cmd[1:]), flush=True)
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent)


def wait_for_nodes(address: str, count: int, timeout: float = 120) -> None:
    import ray

    deadline = time.monotonic() + timeout
    while True:
        try:
            ray.init(address=address, logging_level="ERROR")
            break
        except (ConnectionError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    try:
        while sum(n["Alive"] for n in ray.nodes()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} Ray nodes did not come up in {timeout:.0f} s")
            time.sleep(0.5)
    finally:
        ray.shutdown()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the clips, outputs and logs here (default: a temp dir)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="stylestream-ray2-"))
    inputs = work / "in"
    for name, seconds in (("short-1.mp4", 1.5), ("short-2.mp4", 1.0), ("long.mp4", 4.0)):
        write_demo_clip(inputs / name, seconds=seconds, fps=12, width=96, height=64, keyframe_seconds=1.0)
    config = work / "cluster.yaml"
    config.write_text("size: 0\nengine: {device: cpu, backend: torch}\n"
                      "ray: {cpus_per_worker: 1, segment_seconds: 1.0, warmup_frames: 8}\n")
    # Ray token authentication, as on a real cluster: one token, given to every node and the driver
    token = work / "ray-auth-token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    # its own Ray temp folder, so the "current cluster" it records does not outlive it in /tmp/ray
    ray_tmp = Path(tempfile.mkdtemp(prefix="ss-ray-"))
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_TMPDIR=str(ray_tmp),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_TMPDIR=str(ray_tmp))
    address = f"127.0.0.1:{free_port()}"
    nodes = []
    try:
        nodes.append(start_node(["--head", "--port", address.split(":")[1], "--include-dashboard", "false",
                                 "--temp-dir", str(ray_tmp)], env, work / "head.log"))
        wait_for_nodes(address, 1)
        nodes.append(start_node(["--address", address], env, work / "node2.log"))
        wait_for_nodes(address, 2)
        cmd = [sys.executable, "-m", "streamer.app.cli", "convert", str(inputs), "-o", str(work / "out"), "-c",
               str(config), "--overwrite", "--ray", address]
        print("$ stylestream", " ".join(cmd[3:]), flush=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    finally:
        for node in reversed(nodes):
            stop(node)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    print(proc.stderr[-3000:])
    workers = [(name, node, int(n)) for name, node, n, _ in WORKER_LINE.findall(proc.stderr)]
    busy_nodes = {node for _, node, n in workers if n > 0}
    counts = {p.name: (frames(p), frames(work / "out" / p.name)) for p in sorted(inputs.iterdir())
              if (work / "out" / p.name).exists()}
    print(f"nodes that converted frames: {len(busy_nodes)}; frames (input, output): {counts}")
    ok = (proc.returncode == 0 and len(busy_nodes) >= 2 and len(counts) == 3
          and all(a == b for a, b in counts.values()))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
