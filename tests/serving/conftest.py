"""Shared by the page tests (demo storefront, dashboard): Debian's headless Chromium driven by Selenium."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--lang=en-US")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """``chromium(window="1280,900", extra=())`` starts a headless Chromium with its own profile and the
    browser console log captured; every driver started is quit when the module ends.  An explicit
    driver path: Selenium Manager (which would download drivers) never runs."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[Any] = []

    def start(window: str = "1280,900", extra: Sequence[str] = ()) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*_FLAGS, f"--window-size={window}", *extra,
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        drivers.append(driver)
        return driver

    try:
        yield start
    finally:
        for driver in drivers:
            driver.quit()


@pytest.fixture(scope="module")
def asgi_service(synthetic_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                 fresh_bentoml_metrics: None) -> Iterator[Callable[..., Any]]:
    """``asgi_service(version, admin_key=, public_key=)``: the service's ASGI app in a ``TestClient``
    (entered for the module) over the synthetic bundle saved as ``version`` and promoted, with a fresh
    SQLite store; the client carries ``bundle``, ``tag`` and ``store_uri``."""
    import os
    from contextlib import ExitStack

    from starlette.testclient import TestClient

    from recsys.bundle import Bundle
    from recsys.registry import Registry

    with ExitStack() as stack:
        def start(version: str, *, admin_key: str, public_key: str) -> Any:
            reg = Registry()
            bundle = Bundle.load(synthetic_bundle_dir)
            tag = reg.save(bundle.write_into, metadata={"headline": {"all.map": 0.1}}, version=version)
            reg.promote(tag, metric="all.map", force=True)
            uri = f"sqlite:///{tmp_path_factory.mktemp('state') / 'state.db'}"
            os.environ.update({"RECSYS_STORE_URI": uri, "RECSYS_API_KEY": admin_key,
                               "RECSYS_PUBLIC_KEY": public_key, "RECSYS_WATCH_SECONDS": "0.2",
                               "RECSYS_MODEL": "promoted"})
            from serving.service import CrossSell

            client = stack.enter_context(TestClient(app=CrossSell.to_asgi()))
            client.bundle, client.tag, client.store_uri = bundle, tag, uri
            return client

        yield start


@pytest.fixture(scope="module")
def bentoml_process() -> Iterator[Callable[..., str]]:
    """``bentoml_process(work, env)``: ``bentoml serve serving.service:CrossSell`` on a free port in its
    own session, log in ``work/server.log``; returns the URL once ``/readyz`` answers 200 (fails the
    test with the log's tail otherwise).  Every process started is stopped (SIGTERM, then SIGKILL) when
    the module ends."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = Path(__file__).resolve().parents[2]
    started: list[tuple[subprocess.Popen[bytes], Any]] = []

    def ready(url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:  # not listening yet, or 503 before the model is loaded
            return False

    def start(work: Path, env: dict[str, str]) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(work / "server.log", "wb")  # noqa: SIM115 - closed when the module ends
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "serving.service:CrossSell", "--host", "127.0.0.1",
             "--port", str(port), "--working-dir", str(root)],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("the service did not become ready:\n" + (work / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        return url

    try:
        yield start
    finally:
        for proc, log in started:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            log.close()
