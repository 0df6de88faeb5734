"""Bulk scoring on the twin: N iris rows (1,000,000 by default, ~60 MB of JSON Lines in the local S3) scored end
to end through `inferstack dev` (POST /v1/batches -> the local Step Functions running the synthesized state
machine -> plan -> chunks of 10,000 rows in the batch function's runtime process -> output files in S3 ->
finish), against a plain script that reads the same file, runs onnxruntime in 10,000-row batches and writes
JSON Lines. Both run on this machine, one after the other. Also the batch function's peak memory (VmHWM) beside
the file's size: it grows with the chunk, not the file.

    python -m bench.batches [ROWS]
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from inferstack_infra.local.aws import free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key-0001"
CHUNK = 10_000

PLAIN = r'''
import json, sys
import numpy as np
import onnxruntime as ort
model, source, target, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
with open(source) as lines, open(target, "w") as out:
    def flush(rows, first):
        results = session.run(None, {"features": np.array(rows, dtype=np.float32)})
        columns = [r.tolist() for r in results]
        for i in range(len(rows)):
            out.write(json.dumps({"line": first + i, "outputs": {n: c[i] for n, c in zip(names, columns)}}) + "\n")
    rows, first = [], 1
    for n, line in enumerate(lines, start=1):
        rows.append(json.loads(line)["features"])
        if len(rows) == batch:
            flush(rows, first)
            rows, first = [], n + 1
    if rows:
        flush(rows, first)
'''


def make_file(path: Path, rows: int) -> int:
    rnd = random.Random(0)
    with path.open("w") as f:
        for _ in range(rows):
            f.write(json.dumps({"features": [round(rnd.uniform(4.0, 8.0), 1), round(rnd.uniform(2.0, 4.5), 1),
                                             round(rnd.uniform(1.0, 7.0), 1), round(rnd.uniform(0.1, 2.5), 1)]})
                    + "\n")
    return path.stat().st_size


def plain(source: Path, target: Path) -> tuple[float, int]:
    """Seconds and peak RSS (KB) of the plain script, in a process of its own."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PLAIN, str(ROOT / "models" / "iris.onnx"), str(source),
                             str(target), str(CHUNK)])
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"the plain script failed ({status})")
    return elapsed, usage.ru_maxrss


def vm_hwm_kb(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) if match else 0


def batch_function_pid(parent: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "--name batch-iris" in cmd and "inferstack_infra.local.runtime" in cmd:
                return int(entry.name)
    raise RuntimeError("no batch-iris runtime process")


class Twin:
    def __init__(self, workdir: Path) -> None:
        manifest = workdir / "inferstack.toml"
        manifest.write_text(f"""
name = "bench-batches"
[[api.plans]]
name = "bench"
throttle = {{ rate = 1000, burst = 2000 }}
[batches]
rows_per_chunk = {CHUNK}
[[models]]
name = "iris"
path = "{ROOT / 'models' / 'iris.onnx'}"
tier = "light"
""")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "dev.log").open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "inferstack_infra.cli", "dev", "--manifest",
                                      str(manifest), "--port", str(self.port), "--api-key", f"{KEY}:bench"],
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.http = httpx.Client(base_url=self.url, headers={"x-api-key": KEY}, timeout=60)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if self.http.get("/v1/health").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("inferstack dev did not start")

    def upload(self, path: Path) -> str:
        accepted = self.http.post("/v1/batches/uploads").json()
        with path.open("rb") as body:
            httpx.put(accepted["upload_url"], content=body, timeout=None,
                      headers={"Content-Length": str(path.stat().st_size)}).raise_for_status()
        return str(accepted["input"])

    def score(self, uri: str) -> tuple[float, dict[str, Any]]:
        start = time.perf_counter()
        batch_id = self.http.post("/v1/batches", json={"model": "iris", "input": uri}).json()["batch_id"]
        while True:
            view: dict[str, Any] = self.http.get(f"/v1/batches/{batch_id}").json()
            if view["status"] not in ("queued", "running") and view["finished_at"]:
                return time.perf_counter() - start, view
            time.sleep(0.25)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def run(rows: int = 1_000_000) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        source = d / "rows.jsonl"
        size = make_file(source, rows)
        plain_s, plain_rss = plain(source, d / "plain-out.jsonl")
        twin = Twin(d)
        try:
            warm = d / "warm.jsonl"
            make_file(warm, 100)
            twin.score(twin.upload(warm))  # the first batch renders the ASL (jsii) and warms the function
            pid = batch_function_pid(twin.proc.pid)
            before_kb = vm_hwm_kb(pid)
            uri = twin.upload(source)
            twin_s, view = twin.score(uri)
            after_kb = vm_hwm_kb(pid)
        finally:
            twin.stop()
    if view["status"] != "succeeded" or view["rows"]["succeeded"] != rows:
        raise RuntimeError(f"the batch did not score every row: {view}")
    twin_rate, plain_rate = rows / twin_s, rows / plain_s
    print(f"bulk scoring, {rows:,} iris rows ({size / 1e6:.0f} MB JSON Lines), chunks of {CHUNK:,} rows:\n"
          f"  twin (inferstack dev, end to end): {twin_s:6.1f} s  {twin_rate:10,.0f} rows/s\n"
          f"  plain script (onnxruntime):        {plain_s:6.1f} s  {plain_rate:10,.0f} rows/s\n"
          f"  ratio: {twin_rate / plain_rate:.2f}x (target >= 0.5x)\n"
          f"  batch function peak memory: {after_kb / 1024:.0f} MB ({(after_kb - before_kb) / 1024:+.0f} MB over "
          f"its warm peak) for a {size / 1e6:.0f} MB file; plain script peak {plain_rss / 1024:.0f} MB",
          flush=True)
    return [{"figure": f"batch rows/s, {rows:,} iris rows", "value": twin_rate, "baselines": {"plain": plain_rate},
             "targets": {"plain": 0.5}, "better": "higher"},
            {"figure": "batch function peak MB over warm", "value": (after_kb - before_kb) / 1024,
             "baselines": {}, "targets": {}, "file_mb": size / 1e6, "rss_mb": after_kb / 1024}]


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
