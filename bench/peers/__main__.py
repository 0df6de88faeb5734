"""`make bench-peers`: our heavy container against the serving frameworks a user would pick instead.

Every server serves all-MiniLM-L6-v2 from the same ONNX file, with the same tokenizer, onnxruntime session
options and pooling (`servers/minilm.py`; ours through its handler, `models/minilm/handler.py`), runs from the
same virtualenv (`build/peers-venv`, from `requirements.txt`: the container's requirements and the peers'),
and batches at most 32 requests with a 5 ms window where it batches. Peers run as a user would start them, with
onnxruntime over every core; "mosec 2x1" is mosec as our container runs on a CPU (`inferstack.heavy.instances`):
a worker per core, one thread each. One neutral load generator
(`bench/loadgen.py`: asyncio, keep-alive connections, closed loop) sends one sentence per request at 1, 8 and
32 clients. All servers run at once, idle but for the one under load; measurements are short slices taken in
turn, server by server at each load, the order reversed every round, so that a swing in a shared machine's load
hits every contender alike; the table holds the medians over the rounds.

    python -m bench.peers --venv build/peers-venv [--rounds 4] [--seconds 3] [--gpu]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.loadgen import load
from bench.minilm import texts

ROOT = Path(__file__).resolve().parents[2]
SERVERS_DIR = Path(__file__).with_name("servers")
RESULTS = Path(__file__).with_name("results.json")
CLIENTS = (1, 8, 32)
MAX_BATCH_SIZE, MAX_DELAY_MS = 32, 5


@dataclass(frozen=True)
class Contender:
    name: str
    command: Callable[[Path, int, Path], list[str]]  # (venv, port, our model dir) -> argv
    body: Callable[[str], dict[str, Any]] = lambda text: {"inputs": {"text": [text]}}
    cwd: Path = SERVERS_DIR
    env: tuple[tuple[str, str], ...] = ()


def _python(venv: Path) -> str:
    return str(venv / "bin" / "python")


CONTENDERS = [
    Contender("inferstack", lambda venv, port, model: [_python(venv), "-m", "inferstack.heavy.server", "serve"],
              cwd=ROOT),
    Contender("plain FastAPI", lambda venv, port, model: [_python(venv), "fastapi_plain.py"]),
    Contender("BentoML", lambda venv, port, model: [str(venv / "bin" / "bentoml"), "serve",
                                                     "bentoml_service:MiniLM", "--host", "127.0.0.1",
                                                     "--port", str(port)],
              body=lambda text: {"inputs": [{"text": [text]}]}),
    Contender("LitServe", lambda venv, port, model: [_python(venv), "litserve_server.py"]),
    Contender("mosec", lambda venv, port, model: [_python(venv), "mosec_server.py"]),
    # mosec tuned as our container runs on a CPU (inferstack.heavy.instances): a worker per core, one onnxruntime
    # thread each, so that the comparison is not only between defaults
    Contender("mosec 2x1", lambda venv, port, model: [_python(venv), "mosec_server.py"],
              env=(("PEER_WORKERS", str(len(os.sched_getaffinity(0)))), ("PEER_THREADS", "1"))),
]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(contender: Contender, venv: Path, model_dir: Path, sentence: bytes) -> Iterator[str]:
    """The contender's server, started in a process group of its own (they fork workers), ready to answer."""
    port = _free_port()
    environ = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{SERVERS_DIR}", "PEER_PORT": str(port),
               "PEER_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE), "PEER_MAX_DELAY_MS": str(MAX_DELAY_MS),
               "PEER_MODEL_DIR": str(ROOT / "models" / "minilm"), "PEER_MODEL_FILE": str(model_dir / "model.onnx"),
               "SM_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
               "INFERSTACK_BIND_HOST": "127.0.0.1", "INFERSTACK_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE),
               "INFERSTACK_MAX_DELAY_MS": str(MAX_DELAY_MS), "BENTOML_DO_NOT_TRACK": "True",
               "PYTHONUNBUFFERED": "1", **dict(contender.env)}
    log = tempfile.NamedTemporaryFile("w+", prefix="peer-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(contender.command(venv, port, model_dir), cwd=contender.cwd, env=environ,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{contender.name} did not start:\n{log.read()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(f"{url}/invocations", content=sentence, timeout=5,
                              headers={"content-type": "application/json"}).status_code == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        os.unlink(log.name)


def measure(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict[str, float]:
    load(url, "/invocations", bodies, clients=clients, seconds=1)  # warm the connections
    rate, latencies, statuses = load(url, "/invocations", bodies, clients=clients, seconds=seconds)
    if set(statuses) != {200}:
        raise RuntimeError(f"{url} answered {statuses}")
    ms = np.asarray(latencies) * 1000
    return {"rps": rate, "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def run(venv: Path, *, rounds: int, seconds: float, names: list[str] | None = None) -> dict[str, Any]:
    from inferstack.manifest import load_manifest
    from inferstack_infra.catalog import build_catalog
    from inferstack_infra.packaging import stage_heavy_model

    manifest = load_manifest(ROOT / "inferstack.toml")
    model = manifest.model("minilm")
    sentences = texts(97, seed=7)
    contenders = [c for c in CONTENDERS if not names or c.name in names]
    samples: dict[str, dict[int, list[dict[str, float]]]] = {c.name: {n: [] for n in CLIENTS} for c in contenders}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        # ours reads its model directory as SageMaker lays it out; the peers read the same model.onnx from it
        model_dir = stage_heavy_model(model, manifest, build_catalog(manifest), Path(tmp) / "model",
                                      dependencies=False)
        # every server up at once (idle, they take no CPU), then short slices in turn: a swing in the machine's
        # load hits every contender alike
        bodies = {c.name: [json.dumps(c.body(s)).encode() for s in sentences] for c in contenders}
        urls = {c.name: servers.enter_context(serving(c, venv, model_dir, bodies[c.name][0])) for c in contenders}
        for r in range(rounds):
            for clients in CLIENTS:
                for contender in contenders if r % 2 == 0 else contenders[::-1]:
                    figures = measure(urls[contender.name], bodies[contender.name], clients, seconds)
                    samples[contender.name][clients].append(figures)
                    print(f"round {r + 1}  {contender.name:<14} {clients:>2} clients  {figures['rps']:7.1f} "
                          f"req/s  p50 {figures['p50']:7.1f} ms  p99 {figures['p99']:7.1f} ms", flush=True)
    return {name: {n: {k: statistics.median(s[k] for s in runs) for k in ("rps", "p50", "p99")}
                   for n, runs in by_clients.items()} for name, by_clients in samples.items()}


def table(results: dict[str, Any], device: str) -> str:
    names = list(results)
    ours, peers = names[0], names[1:]
    lines = [f"peer benchmark on {device}: all-MiniLM-L6-v2, one sentence per request, medians over the rounds",
             "", "| clients | " + " | ".join(names) + " | ours vs best peer |", "|---" * (len(names) + 2) + "|"]
    for n in CLIENTS:
        cells = [f"{r['rps']:.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.0f} ms"
                 for r in (results[k][n] for k in names)]
        best = max(peers, key=lambda k: results[k][n]["rps"])
        ratio = (f"{results[ours][n]['rps'] / results[best][n]['rps']:.2f}x {best}'s req/s, p99 "
                 f"{results[ours][n]['p99'] / results[best][n]['p99']:.2f}x")
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {ratio} |")
    lines += ["", *targets(results)]
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[str]:
    names = list(results)
    ours, peers = names[0], names[1:]
    out = []
    if "plain FastAPI" in results:
        ratio = results[ours][1]["p50"] / results["plain FastAPI"][1]["p50"]
        out.append(f"target 1 client: p50 within 1.1x of plain FastAPI's: {ratio:.2f}x "
                   f"{'met' if ratio <= 1.1 else 'NOT met'}")
    if peers:
        best = max(peers, key=lambda k: results[k][32]["rps"])
        rate = results[ours][32]["rps"] / results[best][32]["rps"]
        tail = results[ours][32]["p99"] / results[best][32]["p99"]
        met = rate >= 1.2 and tail <= 1.0
        out.append(f"target 32 clients: >= 1.2x the best peer's ({best}) req/s with a p99 no worse: {rate:.2f}x, "
                   f"p99 {tail:.2f}x {'met' if met else 'NOT met'}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "peers-venv")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--only", nargs="*", help="contenders to run (default: all), ours first")
    parser.add_argument("--gpu", action="store_true", help="label the run as the GPU variant")
    args = parser.parse_args()
    cuda = subprocess.run([_python(args.venv), "-c", "import onnxruntime as o; "
                           "print('CUDAExecutionProvider' in o.get_available_providers())"],
                          capture_output=True, text=True, check=True).stdout.strip() == "True"
    if args.gpu and not cuda:
        raise SystemExit(f"{args.venv}'s onnxruntime has no CUDA provider: install onnxruntime-gpu there")
    device = "GPU (CUDA)" if cuda else f"CPU ({len(os.sched_getaffinity(0))} cores)"
    results = run(args.venv.absolute(), rounds=args.rounds, seconds=args.seconds, names=args.only)
    print()
    print(table(results, device))
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    saved["gpu" if cuda else "cpu"] = {"device": device, "results": results}
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
