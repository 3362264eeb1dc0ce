"""How every stage grows from 1 % to 100 % of an H&M-sized shop: wall time, peak memory, throughput.

    python bench/scale.py --sizes 0.01 0.1 1.0 [--data-root /tmp] [--reuse] [--train-mode no-eval|eval]
                          [--stages generate,train,recommend,serve,http] [--out bench/results/scale.json]
                          [--work DIR --tag crosssell:v…]   # serve a bundle an earlier run trained

Why: the H&M preset is 100× the 1 % shop.  Before running at full size we want, per stage, how time
and memory grow with the purchase lines (the exponent k of ``wall ~ lines^k`` fitted over the sizes
run), and whether the serving targets hold with that bundle: /recommend p99 ≤ 15 ms at concurrency 4
for a customer who has just posted a purchase (the live path), ≤ 10 ms from the precomputed ranking,
and the service's memory.

How, per size F (shop in ``DATA_ROOT/hm-F``; one temporary ``BENTOML_HOME`` per bench run):

* ``generate`` — ``recsys data generate --preset hm --scale F`` (skipped with ``--reuse`` when the
  folder exists; an existing folder is never overwritten);
* ``train`` — ``recsys train -d canonical-files`` (``no-eval``: the nightly retrain; ``eval``:
  evaluate on the last 14 days, then refit); bundle size on disk and the train substage timings;
* ``recommend`` — ``recsys recommend --all --n 12``: customers/s and the bundle load time it logs;
* ``serve`` — this script as a child: load the bundle and build the ``OnlineRecommender`` as
  serving/state.py does (every customer's ranking precomputed, or ``--precompute-max`` of them: at
  1 % they took ~25 KB a customer; then ``gc.freeze``), then time in-process and sequentially,
  answers rendered to the service's JSON: (a) precomputed path, the first request of ≥ 2,000
  distinct (precomputed) customers drawn Zipf-like by activity (the r-th most active weighs 1/r^s,
  sampled without replacement); (b) live path, for ≥ 1,000 other such customers, fold in a purchase
  of an item they never bought (``ingest``, timed on its own; the service also stores the event
  first) and time their next answer;
* ``http`` — the real service (``bentoml serve serving.service:CrossSell``, as bench/serve.py starts
  it), ``--concurrency`` (4) Python client threads with a keep-alive connection each: the same
  customers' first /recommend, then per live customer POST /events and the timed POST /recommend.

Each stage is its own process: its wall time is measured around it and its peak RSS is its own
``ru_maxrss`` from ``os.wait4`` (not RUSAGE_CHILDREN, which mixes every child; for ``http``, the
largest process of the server's tree).  The live loops stop taking single events after
``--live-budget`` seconds (a fold-in costs more as the shop grows); the remaining customers' events
are then folded in as one batch and their answers timed all the same.  Prints a table, writes JSON
(load averages at the start and end of each stage, git SHA, sizes, growth exponents) and a log-log
PNG of wall time and peak RSS against purchase lines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

STAGES = ("generate", "train", "recommend", "serve", "http")
TARGETS_MS = {"precomputed": 10.0, "live": 15.0}


def since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_stage(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run one stage as a child process: wall time, its own peak RSS (wait4), CPU time and its output."""
    load0, out_path, err_path = loadavg(), Path(f"{log}.out"), Path(f"{log}.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = since(t0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err_path.read_text()[-3000:]}")
    return {"wall_s": wall, "peak_rss_gb": round(usage.ru_maxrss / 2**20, 4),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "load_avg_start": load0,
            "load_avg_end": loadavg(), "stdout": out_path.read_text(), "stderr": err_path.read_text()}


def reap(proc: subprocess.Popen[bytes], *, wait: bool) -> Any:
    """wait4 on a child: its rusage once it has ended, else None.  ``wait``: SIGTERM, SIGKILL after 30 s."""
    if proc.returncode is None:
        if wait:
            proc.terminate()
        deadline = time.perf_counter() + 30
        while not (ended := os.wait4(proc.pid, os.WNOHANG))[0]:
            if not wait:
                return None
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(ended[1])
        proc.usage = ended[2]  # type: ignore[attr-defined]
    return proc.usage  # type: ignore[attr-defined]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def proc_rss(pid: int | str = "self") -> tuple[float, float]:
    """A process's resident set now and its peak (VmRSS, VmHWM), GB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    f = {k: v for k, _, v in (ln.partition(":") for ln in lines)}
    now, peak = (round(int(f.get(k, "0 kB").split()[0]) / 2**20, 4) for k in ("VmRSS", "VmHWM"))
    return now, peak


def tree_rss(pid: int) -> tuple[float, float]:
    """The largest (VmRSS, VmHWM) of a process and its descendants, GB (the service's worker)."""
    best, todo = (0.0, 0.0), [pid]
    while todo:
        p = todo.pop()
        try:
            now, peak = proc_rss(p)
            todo += [int(c) for task in Path(f"/proc/{p}/task").iterdir()
                     for c in (task / "children").read_text().split()]
        except OSError:
            continue
        best = (max(best[0], now), max(best[1], peak))
    return best


def pcts(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=float)
    return {"n": int(len(a)), **({f"{k}_ms": round(float(np.percentile(a, q)), 3)
                                  for k, q in (("p50", 50), ("p99", 99), ("max", 100))} if len(a) else {})}


# ------------------------------------------------------------------------ serve (child process)
def serve_child(tag: str, out: Path, n_pre: int, n_live: int, zipf: float, budget: float, seed: int,
                precompute_max: int | None) -> None:
    """Load the bundle as the service does, then time the precomputed and the live path in-process."""
    import gc
    import logging

    import polars as pl

    t0 = time.perf_counter()
    import serving.service as svc  # the service module: bentoml, and the answers' JSON rendering
    from recsys.bundle import Bundle
    from recsys.online import OnlineRecommender
    from recsys.registry import Registry
    from recsys.rules import load_placements
    from serving.state import Settings

    res: dict[str, Any] = {"import_s": since(t0), "rss_after_import_gb": proc_rss()[0]}
    t0 = time.perf_counter()
    bundle = Bundle.load(Registry().resolve(tag).path)
    res.update(bundle_load_s=since(t0), rss_after_bundle_load_gb=proc_rss()[0])
    t0 = time.perf_counter()
    online = OnlineRecommender(bundle, load_placements(Settings().placements), version=tag)
    res["precomputed_customers"] = online.precompute(max_customers=precompute_max)
    gc.collect()
    gc.freeze()  # as serving/state.py after a swap
    res.update(build_and_precompute_s=since(t0), rss_after_load_gb=proc_rss()[0])

    hist, rng = online.hybrid.history, np.random.default_rng(seed)
    ids, counts = hist.customers.ids, np.diff(hist.indptr)
    rank = np.empty(len(ids))  # 1 = the most active customer, ties broken at random
    rank[np.lexsort((rng.random(len(ids)), -counts))] = np.arange(1, len(ids) + 1)
    keys = np.log(rng.random(len(ids))) * rank**zipf  # Efraimidis–Spirakis: weight 1/rank^s, no replacement
    order = [str(ids[i]) for i in np.argsort(-keys)]
    if len(order) < n_pre + n_live:  # a small shop: its customers shared out
        n_pre, n_live = n_pre * len(order) // (n_pre + n_live), n_live * len(order) // (n_pre + n_live)
    pre = [c for c in order if c in online.precomputed][:n_pre]  # all of them unless --precompute-max
    taken = set(pre)
    live = [c for c in order if c not in taken][:n_live]
    res["sample"] = {"zipf_s": zipf, "precomputed": len(pre), "live": len(live),
                     "mean_lines_all": round(float(counts.mean()), 1),
                     "mean_lines_sampled": round(float(np.mean([len(hist.of(c)) for c in pre + live])), 1)}

    def answer(cid: str) -> float:
        t = time.perf_counter()
        online.recommend(cid, placement="for_you", n=12,
                         render=("json:True", lambda f: svc._body(online, svc._items(f, online, True))))
        return (time.perf_counter() - t) * 1000

    res["precomputed"] = pcts([answer(c) for c in pre])
    popular, plan = online.popular_frame["item_id"].to_list(), []
    for cid in live:  # (customer, one of the popular items they never bought)
        bought = set(hist.of(cid)["item_id"].to_list())
        fresh = [i for i in popular[: len(bought) + 50] if i not in bought] or popular
        plan.append((cid, fresh[int(rng.integers(len(fresh)))]))
    schema: dict[str, Any] = {"customer_id": pl.String, "item_id": pl.String, "event": pl.String,
                              "ts": pl.Datetime("us"), "quantity": pl.Float32, "price": pl.Float64,
                              "order_id": pl.String, "source": pl.String}

    def events(rows: list[tuple[str, str]]) -> pl.DataFrame:  # the frame serving/service.py builds
        return pl.DataFrame([{"customer_id": c, "item_id": i, "event": "purchase", "ts": online.clock,
                              "quantity": 1.0} for c, i in rows], schema=schema)

    failures: list[logging.LogRecord] = []  # ingest logs a generator's fold-in failure and goes on
    handler = logging.Handler(logging.ERROR)
    handler.emit = failures.append  # type: ignore[method-assign,assignment]
    logging.getLogger("recsys.online").addHandler(handler)
    ingest_ms, live_ms, deadline = [], [], time.perf_counter() + budget
    for cid, item in plan:
        if time.perf_counter() > deadline:
            break
        t = time.perf_counter()
        online.ingest(events([(cid, item)]))
        ingest_ms.append((time.perf_counter() - t) * 1000)
        assert cid not in online.precomputed  # the next answer takes the live path
        live_ms.append(answer(cid))
    if rest := plan[len(ingest_ms):]:  # over budget: one batch for the others, answers timed the same
        t0 = time.perf_counter()
        online.ingest(events(rest))
        res["live_batch_events"] = {"events": len(rest), "s": since(t0)}
        live_ms += [answer(c) for c, _ in rest]
    if failures:
        raise SystemExit(f"{len(failures)} fold-in failures, first: {failures[0].getMessage()}")
    res.update(live_single_events=len(ingest_ms), ingest_one_event=pcts(ingest_ms), live=pcts(live_ms))
    res["rss_end_gb"], res["rss_peak_gb"] = proc_rss()
    res["http_plan"] = {"precomputed": pre, "live": plan}
    out.write_text(json.dumps(res))


# ----------------------------------------------------------------------------------- http stage
def http_stage(tag: str, plan: dict[str, Any], env: dict[str, str], work: Path, conc: int,
               budget: float, precompute_max: int | None) -> dict[str, Any]:
    """The real service on loopback and ``conc`` client threads, on the serve stage's customers."""
    import http.client
    import socket
    import urllib.request

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port, key = int(s.getsockname()[1]), "scale-bench"
    store = work / f"state-{tag.replace(':', '-')}.db"
    senv = dict(env, RECSYS_MODEL=tag, RECSYS_STORE_URI=f"sqlite:///{store}", RECSYS_API_KEY=key,
                RECSYS_WATCH_SECONDS="3600", RECSYS_PRECOMPUTE_MAX=str(precompute_max or ""))
    load0, t0, log = loadavg(), time.perf_counter(), open(work / "http-server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:CrossSell",
                               "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(ROOT)],
                              cwd=ROOT, env=senv, stdout=subprocess.DEVNULL, stderr=log)
    res: dict[str, Any] = {"mode": f"HTTP, {conc} Python client threads, one keep-alive connection each"}
    local = threading.local()

    def post(route: str, body: dict[str, Any]) -> float:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
        t = time.perf_counter()
        local.conn.request("POST", route, json.dumps(body),
                           {"content-type": "application/json", "x-api-key": key})
        resp = local.conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{route} answered {resp.status}")
        return (time.perf_counter() - t) * 1000

    def rec(cid: str) -> list[float]:
        return [post("/recommend", {"customer_id": cid, "placement": "for_you", "n": 12})]

    def event_then_rec(row: list[str]) -> list[float]:
        return [post("/events", {"events": [{"customer_id": row[0], "item_id": row[1]}]}), *rec(row[0])]

    def drive(items: list[Any], call: Callable[[Any], list[float]],
              deadline: float = float("inf")) -> list[list[float] | None]:
        """``conc`` threads take the items in order; None for those not started before the deadline."""
        with ThreadPoolExecutor(conc) as pool:
            return list(pool.map(lambda item: None if time.perf_counter() > deadline else call(item), items))

    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if reap(server, wait=False) or time.perf_counter() - t0 > 3600:
                    raise SystemExit(f"service not ready; see {work / 'http-server.log'}") from None
                time.sleep(0.5)
        res.update(ready_s=since(t0), rss_after_ready_gb=tree_rss(server.pid)[0])
        res["precomputed"] = pcts([t[0] for t in drive(plan["precomputed"], rec) if t])
        single = drive(plan["live"], event_then_rec, time.perf_counter() + budget)
        done = [t for t in single if t]
        res.update(live_single_events=len(done), events_one_event=pcts([t[0] for t in done]))
        live = [t[1] for t in done]
        if over := [row for row, t in zip(plan["live"], single, strict=True) if t is None]:
            secs = sum(post("/events", {"events": [{"customer_id": c, "item_id": i} for c, i in
                                                   over[k:k + 1000]]})  # ≤ 1,000 events per request
                       for k in range(0, len(over), 1000)) / 1000
            res["live_batch_events"] = {"events": len(over), "s": round(secs, 3)}
            live += [t[0] for t in drive([c for c, _ in over], rec) if t]
        res["live"] = pcts(live)
        res["rss_end_gb"], res["rss_peak_gb"] = tree_rss(server.pid)
    finally:
        usage = reap(server, wait=True)
        log.close()
    peak = max(round(usage.ru_maxrss / 2**20, 4), res["rss_peak_gb"])
    return {**res, "wall_s": since(t0), "peak_rss_gb": peak, "load_avg_start": load0,
            "load_avg_end": loadavg()}


# --------------------------------------------------------------------------------------- driver
def run_size(size: float, args: argparse.Namespace, stages: list[str], work: Path,
             env: dict[str, str]) -> dict[str, Any]:
    name, data = f"{float(size)}", args.data_root / f"hm-{float(size)}"
    row: dict[str, Any] = {"scale": size, "data": str(data)}
    if "generate" in stages:
        if data.exists() and not args.reuse:
            raise SystemExit(f"{data} exists: pass --reuse, or another --data-root")
        row["generate"] = {"skipped": True, "why": f"{data} exists (--reuse)"} if data.exists() else (
            run_stage(cli("data", "generate", "--preset", "hm", "--scale", str(size), "--format", "parquet",
                          "--out", str(data), "--no-progress"), env, work / f"generate-{name}"))
    if not (data / "manifest.json").exists():
        raise SystemExit(f"no shop at {data}: add the generate stage")
    counts = json.loads((data / "manifest.json").read_text())["counts"]
    row.update(lines=counts["purchases"], customers=counts["customers"], items=counts["items"])
    if "train" in stages:
        metrics, mode = work / f"train-{name}.json", ["--no-eval"] if args.train_mode == "no-eval" else []
        r = run_stage(cli("train", "-c", str(ROOT / "configs" / "train-hm.yaml"), "-d", "canonical-files",
                          "--data-path", str(data), "--no-progress", "--metrics-out", str(metrics), *mode),
                      env, work / f"train-{name}")
        if (m := re.search(r"saved (\S+) \(.*\) → (.+)$", r["stdout"], re.M)) is None:
            raise SystemExit(f"train printed no 'saved …' line:\n{r['stdout'][-2000:]}")
        info = json.loads(metrics.read_text())["info"]
        size_b = sum(f.stat().st_size for f in Path(m.group(2).strip()).rglob("*") if f.is_file())
        row["train"] = {**r, "mode": args.train_mode, "tag": m.group(1), "bundle_mb": round(size_b / 1e6, 2),
                        "train_s": info.get("train_seconds"), "timings": info.get("timings")}
    elif args.tag:  # a bundle trained earlier (e.g. a long full-size run), stored in --work's bentoml/
        folder = Path(env["BENTOML_HOME"]) / "models" / args.tag.replace(":", "/")
        if not folder.is_dir():
            raise SystemExit(f"--tag {args.tag}: no {folder}")
        size_b = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        row["train"] = {"skipped": True, "why": "--tag: trained earlier", "tag": args.tag,
                        "bundle_mb": round(size_b / 1e6, 2)}
    elif set(stages) & {"recommend", "serve", "http"}:
        raise SystemExit("recommend/serve/http need the train stage (the bundle of this run) or --tag")
    tag = row.get("train", {}).get("tag")
    if "recommend" in stages:
        recs = work / f"recs-{name}.parquet"
        r = run_stage(cli("recommend", "--model", tag, "--all", "--n", "12", "--out", str(recs),
                          "--no-progress"), env, work / f"recommend-{name}")
        pat = r"wrote ([\d,]+) rows for ([\d,]+) customers .*\(([\d.]+)s, [\d,]+ customers/s\)"
        if (m := re.search(pat, r["stdout"])) is None:
            raise SystemExit(f"recommend printed no 'wrote …' line:\n{r['stdout'][-2000:]}")
        rows, cust, secs = (float(g.replace(",", "")) for g in m.groups())
        load = re.search(r"loaded \S+ in ([\d.]+)s", r["stderr"])
        row["recommend"] = {**r, "rows": int(rows), "customers": int(cust), "batch_s": secs,
                            "customers_per_s": round(cust / max(secs, 1e-9), 1),
                            "output_mb": round(recs.stat().st_size / 1e6, 2),
                            "bundle_load_s": float(load.group(1)) if load else None}
        recs.unlink()
    if "serve" in stages:
        child = work / f"serve-{name}.json"
        keys = ("precomputed-customers", "live-customers", "zipf", "live-budget", "seed", "precompute-max")
        opts = [f"--{k}={v}" for k in keys if (v := getattr(args, k.replace("-", "_"))) is not None]
        r = run_stage([sys.executable, str(Path(__file__).resolve()), "--serve-child", tag, str(child),
                       *opts], env, work / f"serve-{name}")
        row["serve"] = {**r, **json.loads(child.read_text()), "mode": "in-process, sequential (no HTTP)"}
    if "http" in stages:
        if "serve" not in row:
            raise SystemExit("the http stage replays the serve stage's customers: add serve")
        row["http"] = http_stage(tag, row["serve"]["http_plan"], env, work, args.concurrency,
                                 args.live_budget, args.precompute_max)
    for stage in stages:  # console output and sample lists stay out of the JSON
        for key in ("stdout", "stderr", "http_plan"):
            row.get(stage, {}).pop(key, None)
    return row


def exponent(lines: list[int], values: list[float]) -> float | None:
    """Slope of log(value) against log(lines): the k of value ~ lines^k (None below two sizes)."""
    pts = [(x, y) for x, y in zip(lines, values, strict=True) if x > 0 and y > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    return round(float(np.polyfit(np.log([x for x, _ in pts]), np.log([y for _, y in pts]), 1)[0]), 3)


def report(results: dict[str, Any], stages: list[str], growth: dict[str, Any], header: str) -> None:
    head = f"{'stage':<10}{'size':>7}{'lines':>12}{'wall s':>9}{'peak GB':>9}  {'throughput':<46}load 1m"
    print(f"\n{header}\n{head}\n" + "-" * (len(head) + 5))
    for stage in stages:
        for name, r in results.items():
            s = r.get(stage, {})
            if s.get("skipped"):
                print(f"{stage:<10}{name:>7}{r['lines']:>12,}  skipped: {s['why']}")
                continue
            tput = (f"{s['customers_per_s']:,.0f} customers/s" if stage == "recommend" else
                    f"p99 precomputed {s['precomputed'].get('p99_ms', 0):.1f} ms · live "
                    f"{s['live'].get('p99_ms', 0):.1f} ms" if stage in ("serve", "http") else
                    f"{r['lines'] / s['wall_s']:,.0f} lines/s")
            print(f"{stage:<10}{name:>7}{r['lines']:>12,}{s['wall_s']:>9.1f}{s['peak_rss_gb']:>9.2f}  "
                  f"{tput:<46}{s['load_avg_start'][0]:.1f}→{s['load_avg_end'][0]:.1f}")
        if (g := growth[stage])["wall_s"] is not None:
            print(f"{'':<10}{'k':>7}{'':>12}{g['wall_s']:>9.2f}{g['peak_rss_gb'] or 0:>9.2f}  "
                  "(growth exponent: wall, peak RSS ~ lines^k)")
    for name, r in results.items():
        if "train" in r:
            print(f"\n{name}: bundle {r['train']['bundle_mb']:.1f} MB; train substages: "
                  + ", ".join(f"{k} {v:.1f}s" for k, v in (r["train"].get("timings") or {}).items()))
        for stage in ("serve", "http"):
            if (s := r.get(stage)) is None:
                continue
            print(f"{name} {s['mode']}: " + (
                f"bundle load {s['bundle_load_s']:.2f}s, build + precompute "
                f"{s['build_and_precompute_s']:.1f}s, "
                f"RSS after load {s['rss_after_load_gb']:.2f} GB" if stage == "serve" else
                f"ready in {s['ready_s']:.1f}s, worker RSS when ready {s['rss_after_ready_gb']:.2f} GB")
                + f", at the end {s['rss_end_gb']:.2f} GB (peak {s['rss_peak_gb']:.2f})")
            for path, target in TARGETS_MS.items():
                if (p := s[path])["n"]:
                    print(f"    {path:<12} n={p['n']:<5} p50 {p['p50_ms']:7.2f}  p99 {p['p99_ms']:7.2f}  max "
                          f"{p['max_ms']:8.2f} ms  (p99 ≤ {target:.0f} ms: "
                          f"{'met' if p['p99_ms'] <= target else 'NOT met'})")
            fold, batch = s.get("ingest_one_event") or s.get("events_one_event"), s.get("live_batch_events")
            print(f"    fold-in of one event{' (POST /events)' if stage == 'http' else ''}: p50 "
                  f"{fold.get('p50_ms', 0):.2f}  p99 {fold.get('p99_ms', 0):.2f} ms ({fold['n']} single"
                  + (f"; --live-budget reached, {batch['events']} more in one batch: {batch['s']:.2f}s)"
                     if batch else ")"))


def plot(ok: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in zip(axes, ("wall_s", "peak_rss_gb"), ("wall time (s)", "peak RSS (GB)"),
                              strict=True):
        xs = [r["lines"] for rows in ok.values() for r in rows]
        ys = [r[s][key] for s, rows in ok.items() for r in rows]
        for stage, rows in ok.items():
            ax.plot([r["lines"] for r in rows], [r[stage][key] for r in rows], "o-", label=stage)
        ax.set(xscale="log", yscale="log", xlabel="purchase lines", title=title)
        if xs:  # explicit limits: log axes around a single size do not autoscale
            ax.set(xlim=(min(xs) / 2, max(xs) * 2), ylim=(min(ys) / 2, max(ys) * 2))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.01])
    ap.add_argument("--data-root", type=Path, default=Path("/tmp"))
    ap.add_argument("--reuse", action="store_true", help="Use an existing DATA_ROOT/hm-F, do not generate.")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--train-mode", choices=["no-eval", "eval"], default="no-eval")
    ap.add_argument("--work", type=Path, help="BENTOML_HOME, logs (default: a temp folder, removed).")
    ap.add_argument("--tag", help="Without the train stage: the stored version (crosssell:v…) in WORK/bentoml "
                                  "to use, trained by an earlier run.")
    ap.add_argument("--precomputed-customers", type=int, default=2000)
    ap.add_argument("--live-customers", type=int, default=1000)
    ap.add_argument("--zipf", type=float, default=1.0, help="Customers drawn with weight 1/rank^s.")
    ap.add_argument("--live-budget", type=float, default=300.0, help="Seconds of single-event fold-ins.")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--precompute-max", type=int, help="Customers ranked at load (RECSYS_PRECOMPUTE_MAX; "
                    "default all, as the service): the precomputed rankings' memory grows with customers.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    ap.add_argument("--serve-child", nargs=2, metavar=("TAG", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_child:
        serve_child(args.serve_child[0], Path(args.serve_child[1]), args.precomputed_customers,
                    args.live_customers, args.zipf, args.live_budget, args.seed, args.precompute_max)
        return
    if unknown := set(args.stages.split(",")) - set(STAGES):
        raise SystemExit(f"unknown stage(s) {sorted(unknown)}; known: {', '.join(STAGES)}")
    stages = [s for s in STAGES if s in args.stages.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, BENTOML_HOME=str(work / "bentoml"), BENTOML_DO_NOT_TRACK="True",
               OPENBLAS_NUM_THREADS="1")

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    sha, dirty = git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    load0 = loadavg()
    try:
        results = {f"{float(s)}": run_size(s, args, stages, work, env) for s in args.sizes}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    ok = {s: [r for r in results.values() if s in r and not r[s].get("skipped")] for s in stages}
    growth = {s: {k: exponent([r["lines"] for r in rows], [r[s][k] for r in rows])
                  for k in ("wall_s", "peak_rss_gb")} for s, rows in ok.items()}
    report(results, stages, growth, f"scale bench · git {sha[:10]}{' + uncommitted changes' if dirty else ''}"
           f" · {os.cpu_count()} cores · train {args.train_mode} · load average {load0[0]:.1f} at the start")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "git_sha": sha, "git_dirty": dirty, "sizes": args.sizes, "stages": stages,
        "train_mode": args.train_mode,
        "machine": {"cpus": os.cpu_count(), "load_average_start": load0, "load_average_end": loadavg()},
        "targets_p99_ms": TARGETS_MS, "growth_exponent_vs_lines": growth, "results": results,
        "peak_rss": "ru_maxrss of each stage's own process (os.wait4); http: the server tree's largest",
    }, indent=2, default=str))
    plot(ok, args.out.with_suffix(".png"))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
