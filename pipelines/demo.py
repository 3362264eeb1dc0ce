"""``recsys demo``: the main job on the embedded synthetic shop, end to end, in one command.

generate → load back through the SQLite loader → validate → describe → train + evaluate → promote →
serve, then one real HTTP request against the running service, printed as a ``curl`` line to copy.
Why a command rather than a shell recipe: a newcomer runs exactly one line; every step is also a
command of its own, and the demo prints them so people learn the real ones.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from pipelines._common import DATASETS, PROJECT_ROOT, echo_report
from pipelines.train import print_metrics
from recsys.data import describe as dataset_stats
from recsys.data import load_dataset
from recsys.data.synthetic import generate_shop, write_sqlite


def _wait_ready(url: str, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def _trouser_buyer(bundle) -> str:  # type: ignore[no-untyped-def]
    """A customer whose latest order has trousers: the planted cross-sell (belts, shoes) shows at once."""
    import polars as pl

    cat = dict(zip(bundle.catalogue["item_id"].to_list(), bundle.catalogue["category"].to_list(), strict=True))
    h = bundle.hybrid.history.frame.with_columns(pl.col("item_id").replace_strict(cat, default=None).alias("c"))
    last = h.filter(pl.col("ts") == pl.col("ts").max().over("customer_id"))
    hit = last.filter(pl.col("c") == "trousers").sort("ts", descending=True)
    return str(hit["customer_id"][0]) if hit.height else str(h["customer_id"][0])


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its shop and state databases.")] = Path("data/demo"),
    seed: Annotated[int, typer.Option(help="Synthetic shop seed.")] = 0,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the service after training.")] = True,
    port: Annotated[int, typer.Option(help="Service port.")] = 3000,
    serve_seconds: Annotated[float | None, typer.Option(help="Stop serving after N seconds (default: Ctrl+C).")] = None,
    config: Annotated[Path, typer.Option("--config", "-c", help="Training YAML.")] =
        PROJECT_ROOT / "configs" / "train.yaml",
) -> None:
    """Synthetic shop → SQLite → validate → stats → train → promote → serve + a real request."""
    from recsys.config import load_train_config
    from recsys.registry import Registry
    from recsys.training import train

    t0 = time.perf_counter()
    shop = generate_shop(seed=seed)
    db = workdir / "shop.sqlite"
    write_sqlite(shop.dataset, db)
    typer.echo(f"[1] generated synthetic shop (seed={seed}) → {db}   (recsys data generate --format sqlite --out {db})")
    ds, report = load_dataset(DATASETS / "canonical-sqlite.yaml", location=f"sqlite:///{db}")
    echo_report(report)
    typer.echo(f"[2] loaded and validated {ds.interactions.height:,} interactions from SQLite   "
               f"(recsys data validate -d canonical-sqlite --data-path sqlite:///{db})")
    s = dataset_stats(ds)
    typer.echo(f"[3] {s['customers']:,} customers, {s['items_in_catalogue']:,} items, {s['categories']} categories, "
               f"{s['orders']:,} orders, {s['date_min']} → {s['date_max']}, repeat buyers {s['repeat_buyer_share']:.0%}")
    typer.echo("    top categories: " + ", ".join(f"{r['category']} ({r['lines']:,})" for r in s["top_categories"][:5]))

    cfg = load_train_config(config)
    result = train(ds, cfg, progress=False)
    print_metrics(result.metrics.filter(~result.metrics["model"].str.starts_with("generator:")), cfg.k)
    registry = Registry()
    tag = registry.save(result.bundle.write_into, metadata={
        "headline": result.bundle.manifest["headline"], "dataset": ds.source,
        "created": result.bundle.manifest["created"], "k": cfg.k})
    registry.promote(tag, metric=cfg.promote_metric, force=True)
    typer.echo(f"[4] trained in {result.info['train_seconds']:.1f}s and promoted {tag}   "
               f"(recsys train; recsys models promote {tag})")
    typer.echo(f"done in {time.perf_counter() - t0:.1f}s")
    if not serve:
        return

    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, RECSYS_MODEL=tag, RECSYS_STORE_URI=f"sqlite:///{(workdir / 'state.db').resolve()}",
               BENTOML_DO_NOT_TRACK="True", OPENBLAS_NUM_THREADS="1")
    # The page gets the public key only; the admin key (erase, consent) stays here unless you set one.
    env.setdefault("RECSYS_PUBLIC_KEY", "demo-public-key")
    env.setdefault("RECSYS_API_KEY", secrets.token_urlsafe(16))
    env["RECSYS_DEMO"] = "1"  # the storefront page at /demo (it shows purchase histories: demo only)
    from serving.process import bentoml_serve_cmd, start_service, stop_on_signals, stop_service

    with stop_on_signals():  # SIGTERM, like Ctrl+C, stops the service and every worker (the finally below)
        _serve(start_service(bentoml_serve_cmd(host="127.0.0.1", port=port, working_dir=PROJECT_ROOT), env=env,
                             cwd=PROJECT_ROOT), url, tag, result.bundle, serve_seconds)


def _serve(proc, url: str, tag: str, bundle, serve_seconds: float | None) -> None:  # type: ignore[no-untyped-def]
    """Wait for the service, show one real request, serve until Ctrl+C/SIGTERM or ``serve_seconds``."""
    from serving.process import stop_service

    try:
        if not _wait_ready(url, 90):
            raise typer.Exit(1)
        customer = _trouser_buyer(bundle)
        body = json.dumps({"customer_id": customer, "placement": "for_you", "n": 3})
        req = urllib.request.Request(f"{url}/recommend", data=body.encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
        typer.echo(f"[5] serving {tag} on {url} (recsys serve). Try it:\n\n"
                   f"  curl -s -X POST {url}/recommend -H 'content-type: application/json' -d '{body}'\n")
        typer.echo(json.dumps(answer, indent=2))
        typer.echo(f"\nOpen the storefront demo: {url}/demo · OpenAPI docs: {url}/docs · Ctrl+C stops the service.")
        if serve_seconds is not None:
            time.sleep(serve_seconds)
        else:
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_service(proc)
