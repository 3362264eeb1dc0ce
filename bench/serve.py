"""HTTP benchmark of the recommendation service: wrk from a second process on loopback.

    python bench/serve.py [--dataset completejourney|synthetic] [--tag TAG] [--duration 15] [--conc 1,4,16]

Starts the real service (``bentoml serve serving.service:CrossSell``) on a free loopback port with a bundle
(trained into ``bench/results/bentoml-home`` unless ``--tag`` names one there or ``--bundle-dir`` gives a
saved bundle directory), then drives ``GET /livez``
(the floor of the same server stack), ``POST /recommend`` (rotating over 500 real customers, so the answer
cache does not make it trivial) and ``POST /complements`` (rotating over 300 items) with wrk at each
concurrency for ``--duration`` seconds, in ``--rounds`` interleaved rounds (median round reported: on this
2-core VM single runs' tail percentiles moved by 10-50x from run to run).  Prints p50/p95/p99 latency, requests/s, errors and the ratio to
/livez measured in the same run, plus the in-process cost of one recommendation (no HTTP), and writes JSON
to ``bench/results/serve.json``.  wrk comes from Debian's package, installed here when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HOME = RESULTS / "bentoml-home"
os.environ["BENTOML_HOME"] = str(HOME)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
sys.path.insert(0, str(ROOT))

LUA_DONE = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.status + summary.errors.timeout
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, '
    .. '"p50": %.3f, "p95": %.3f, "p99": %.3f, "max": %.3f}\\n',
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("installing wrk (Debian package) …")
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bundle_tag(dataset: str, tag: str | None, bundle_dir: str | None = None) -> str:
    from recsys.registry import Registry

    reg = Registry()
    if tag:
        return reg.resolve(tag).tag
    if bundle_dir:  # e.g. the bundle `bench/quality.py --save-bundle DIR` trained: no second training run
        from recsys.bundle import Bundle

        bundle = Bundle.load(bundle_dir)
        return reg.save(bundle.write_into, metadata={
            "headline": bundle.manifest.get("headline"), "dataset": bundle.manifest.get("data", {}).get("source", dataset),
            "created": bundle.manifest.get("created"), "from": str(bundle_dir)})
    wanted = "completejourney" if dataset == "completejourney" else "synthetic"
    for v in reg.versions():
        if wanted in str(v.metadata.get("dataset", "")):
            return v.tag
    config = ROOT / "configs" / ("train-completejourney.yaml" if dataset == "completejourney" else "train.yaml")
    print(f"training a {dataset} bundle into {HOME} (once) …", flush=True)
    subprocess.run([sys.executable, "-m", "pipelines.cli", "train", "-c", str(config), "--no-progress"],
                   cwd=ROOT, check=True, env=dict(os.environ), stdout=subprocess.DEVNULL)
    for v in reg.versions():
        if wanted in str(v.metadata.get("dataset", "")):
            return v.tag
    raise SystemExit("training did not produce a bundle")


def lua_post(path: Path, route_body: list[str]) -> None:
    bodies = ",\n".join(json.dumps(json.dumps(b)) for b in route_body)  # Lua string literals
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{bodies}\n}}\nlocal i = 0\n"
        "request = function()\n  i = (i % #bodies) + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
        + LUA_DONE
    )


def run_wrk(wrk: str, url: str, script: Path, conc: int, duration: float) -> dict:
    cmd = [wrk, f"-t{min(conc, 2)}", f"-c{conc}", f"-d{int(duration)}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(line[len("RESULT "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def sequential_client(port: int, route: str, bodies: list[str] | None, seconds: float = 6.0) -> dict:
    """One keep-alive connection, one request at a time, timed in Python: a cross-check of wrk's
    percentiles (on this machine wrk's tail percentiles came out far above what any single request took)."""
    import http.client

    import numpy as np

    conn = http.client.HTTPConnection("127.0.0.1", port)
    times, i, end = [], 0, time.time() + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        if bodies is None:
            conn.request("GET", route)
        else:
            conn.request("POST", route, bodies[i % len(bodies)], {"content-type": "application/json"})
            i += 1
        resp = conn.getresponse()
        resp.read()
        times.append((time.perf_counter() - t0) * 1000)
    arr = np.array(times)
    return {"requests": len(arr), "rps": len(arr) / seconds, "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)), "p99": float(np.percentile(arr, 99)), "max": float(arr.max())}


def in_process(tag: str, customers: list[str]) -> dict:
    import numpy as np

    from recsys.bundle import Bundle
    from recsys.online import Filters, OnlineRecommender
    from recsys.registry import Registry
    from recsys.rules import load_placements

    online = OnlineRecommender(Bundle.load(Registry().get(tag).path), load_placements(ROOT / "configs" / "placements.yaml"),
                               version=tag)
    online.cache.size = 0
    now = online.clock

    def med(fn) -> float:  # type: ignore[no-untyped-def]
        ts = []
        for c in customers:
            t0 = time.perf_counter()
            fn(c)
            ts.append((time.perf_counter() - t0) * 1000)
        return float(np.median(ts))

    live = med(lambda c: online._recommend(c, "for_you", 12, (), Filters(), now))
    online.precompute(max_customers=None)
    pre = med(lambda c: online._recommend(c, "for_you", 12, (), Filters(), now))
    return {"live_ranking_ms": live, "precomputed_ms": pre}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="completejourney", choices=["completejourney", "synthetic"])
    ap.add_argument("--tag")
    ap.add_argument("--bundle-dir", help="Serve this saved bundle directory (registered into the bench's store).")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--conc", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=3,
                    help="Interleaved rounds; the median round of each metric is reported (tails are noisy here).")
    args = ap.parse_args()
    wrk = ensure_wrk()
    tag = bundle_tag(args.dataset, args.tag, args.bundle_dir)
    from recsys.bundle import Bundle
    from recsys.registry import Registry

    bundle = Bundle.load(Registry().get(tag).path)
    customers = bundle.hybrid.history.customers.ids[:500].tolist()
    items = bundle.hybrid.history.frame["item_id"].unique(maintain_order=True).head(300).to_list()
    del bundle
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    env = dict(os.environ, RECSYS_MODEL=tag, RECSYS_STORE_URI=f"sqlite:///{work / 'state.db'}",
               RECSYS_API_KEY="bench-key")
    server = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:CrossSell", "--host",
                               "127.0.0.1", "--port", str(port), "--working-dir", str(ROOT)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"))
    base = f"http://127.0.0.1:{port}"
    results: dict[str, dict] = {}
    try:
        t0 = time.time()
        while time.time() - t0 < 300:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            raise SystemExit(f"service not ready; see {work / 'server.log'}")
        print(f"service ready in {time.time() - t0:.0f}s: {tag} on {base}", flush=True)
        livez = work / "livez.lua"
        livez.write_text(LUA_DONE)
        rec = work / "recommend.lua"
        lua_post(rec, [{"customer_id": c, "placement": "for_you", "n": 12} for c in customers])
        comp = work / "complements.lua"
        lua_post(comp, [{"item_ids": [i], "n": 12} for i in items])
        # warm-up: every rotating customer's answer once (the service caches answers, as in production)
        run_wrk(wrk, base + "/recommend", rec, 4, 5)
        rounds: dict[str, list[dict]] = {}
        for rnd in range(args.rounds):
            for conc in [int(c) for c in args.conc.split(",")]:
                for name, route, script in (("/livez", "/livez", livez), ("/recommend", "/recommend", rec),
                                            ("/complements", "/complements", comp)):
                    r = run_wrk(wrk, base + route, script, conc, args.duration)
                    rounds.setdefault(f"{name}@{conc}", []).append(r)
                    print(f"  round {rnd + 1}  {name:<13} c={conc:<3} {r['rps']:>8.0f} req/s  p50 {r['p50']:6.2f}  "
                          f"p95 {r['p95']:6.2f}  p99 {r['p99']:7.2f} ms  errors {r['errors']}", flush=True)
        for key, runs in rounds.items():  # the median round of each metric; errors are summed
            name, conc = key.split("@")
            med = {m: float(sorted(x[m] for x in runs)[len(runs) // 2]) for m in ("rps", "p50", "p95", "p99", "max")}
            results[key] = {"endpoint": name, "concurrency": int(conc), **med,
                            "errors": sum(x["errors"] for x in runs), "requests": sum(x["requests"] for x in runs),
                            "rounds": runs}
        seq = {
            "/livez": sequential_client(port, "/livez", None),
            "/recommend": sequential_client(port, "/recommend", [json.dumps({"customer_id": c, "placement": "for_you",
                                                                             "n": 12}) for c in customers]),
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    proc = in_process(tag, customers[:200])
    print(f"\n{'endpoint':<14}{'conc':>5}{'req/s':>10}{'× livez':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for key, r in results.items():
        # paired: each round's endpoint against /livez measured right before it, median over rounds
        floor_runs = results.get(f"/livez@{r['concurrency']}", {}).get("rounds", [])
        pairs = sorted(x["rps"] / max(f["rps"], 1e-9) for x, f in zip(r["rounds"], floor_runs, strict=False))
        r["ratio_to_livez_per_round"] = pairs
        r["ratio_to_livez"] = pairs[len(pairs) // 2] if pairs else 0.0
        r["ratio_of_median_rps"] = r["rps"] / (results.get(f"/livez@{r['concurrency']}", {}).get("rps") or 1)
        print(f"{r['endpoint']:<14}{r['concurrency']:>5}{r['rps']:>10.0f}{r['ratio_to_livez']:>9.2f}{r['p50']:>9.2f}"
              f"{r['p95']:>9.2f}{r['p99']:>9.2f}{r['errors']:>8}")
    print("\ncross-check, one connection timed in Python (c=1):")
    for name, r in seq.items():
        print(f"  {name:<13} {r['rps']:>7.0f} req/s  p50 {r['p50']:.2f}  p95 {r['p95']:.2f}  p99 {r['p99']:.2f}  "
              f"max {r['max']:.1f} ms")
    print(f"\nin-process cost of one recommendation (no HTTP, cache off): served from the precomputed ranking "
          f"{proc['precomputed_ms']:.2f} ms, live ranking {proc['live_ranking_ms']:.2f} ms (median)")
    rec16, p99_4 = results.get("/recommend@16", {}), results.get("/recommend@4", {}).get("p99")
    print(f"targets: /recommend c=16 ≥ 0.6× /livez: {rec16.get('ratio_to_livez', 0):.2f}× (median of the rounds' "
          f"paired ratios {', '.join(f'{x:.2f}' for x in rec16.get('ratio_to_livez_per_round', []))}; ratio of the "
          f"median req/s {rec16.get('ratio_of_median_rps', 0):.2f}×); p99 at c=4 ≤ 25 ms: "
          f"{p99_4}; errors: {sum(r['errors'] for r in results.values())}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "serve.json"
    out.write_text(json.dumps({"tag": tag, "dataset": args.dataset, "duration_s": args.duration,
                               "results": results, "sequential_client": seq, "in_process": proc, "load_average": os.getloadavg()},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
