"""The BentoML way to deploy: ``bentoml build`` packages the service with its code, dependencies and one
model (bentofile.yaml), ``bentoml serve <bento>`` serves it, and its answers are ``recsys serve``'s.

The round trip (build, serve the Bento, serve ``recsys serve``, compare, stop both) took 14–18 s on the
2-core VM (load ~2), so it runs in the default suite, marked ``integration`` (it starts real processes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.process import alive, descendants

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PUBLIC, ADMIN = "bento-public-key", "bento-admin-key"


def test_bentofile_lists_pyprojects_dependencies() -> None:
    """The image installs what ``pip install .`` would: the two lists cannot drift apart."""
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert bentofile["python"]["packages"] == project["dependencies"]
    assert bentofile["service"] == "serving.service:CrossSell"
    assert [m["alias"] for m in bentofile["models"]] == ["crosssell"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


def _call(url: str, body: Any = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                 headers={"content-type": "application/json", "x-api-key": PUBLIC})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


class _Served:
    """A serving command on a free port; ``stop`` sends SIGTERM and checks every process and the port."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([*cmd, "--host", "127.0.0.1", "--port", str(self.port)], cwd=cwd, env=env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.proc.args[:3]} exited:\n" + self.log.read_text()[-3000:])
            if _call(f"{self.url}/readyz")[0] == 200:
                return
            time.sleep(0.5)
        pytest.fail("not ready:\n" + self.log.read_text()[-3000:])

    def stop(self, within: float = 15.0) -> None:
        family = descendants(self.proc.pid)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.proc.args[:3]} did not exit within {within}s of SIGTERM")
        while time.monotonic() - t0 < within and (any(alive(p) for p in family) or not _port_free(self.port)):
            time.sleep(0.1)
        assert not [p for p in family if alive(p)], "processes left after SIGTERM"
        assert _port_free(self.port), f"port {self.port} still taken after SIGTERM"

    def kill(self) -> None:
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)


@pytest.mark.integration
def test_built_bento_serves_the_packaged_model_as_recsys_serve_does(synthetic_bundle_dir: Path, tmp_path: Path) -> None:
    from recsys.bundle import Bundle
    from recsys.registry import Registry

    if not (BIN / "recsys").exists():
        pytest.skip(f"{BIN / 'recsys'} not installed (pip install -e .)")
    home = tmp_path / "bentoml-home"
    bundle = Bundle.load(synthetic_bundle_dir)
    tag = Registry(home).save(bundle.write_into, metadata={"headline": {"all.map": 0.1}}, version="bento-v1")
    customer = str(bundle.hybrid.history.customers.ids[0])
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", "OPENBLAS_NUM_THREADS": "1",
           "RECSYS_PUBLIC_KEY": PUBLIC, "RECSYS_API_KEY": ADMIN}
    env.pop("RECSYS_MODEL", None)

    # build: the repository's bentofile.yaml, from the repository root
    built = subprocess.run([str(BIN / "bentoml"), "build", "-o", "tag"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    bento_tag = next(ln.split("__tag__:", 1)[1].strip() for ln in built.stdout.splitlines() if "__tag__:" in ln)
    assert bento_tag.startswith("crosssell-service:")
    bento_dir = home / "bentos" / "crosssell-service" / bento_tag.split(":", 1)[1]
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert [(m["tag"], m["alias"]) for m in info["models"]] == [(tag, "crosssell")]  # `latest` resolved at build
    src = bento_dir / "src"
    assert (src / "serving" / "service.py").is_file() and (src / "recsys" / "online.py").is_file()
    assert (src / "configs" / "placements.yaml").is_file()
    assert not (src / "tests").exists() and not (src / "bench").exists() and not list(src.rglob("__pycache__"))

    ask = {"customer_id": customer, "placement": "for_you", "n": 8}
    # serve the Bento from elsewhere (not the repository), with no RECSYS_MODEL: it serves its own model
    bento = _Served([str(BIN / "bentoml"), "serve", bento_tag],
                    env={**env, "RECSYS_STORE_URI": f"sqlite:///{tmp_path / 'bento-state.db'}"}, cwd=tmp_path,
                    log=tmp_path / "bento.log")
    try:
        bento.wait_ready()
        status, from_bento = _call(f"{bento.url}/recommend", ask)
        assert status == 200, from_bento
        assert json.loads(from_bento)["model_version"] == tag
        assert _call(f"{bento.url}/docs.json")[0] == 200
        workers = [p for p in descendants(bento.proc.pid) if b"_bentoml_impl.worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert workers and all(Path(f"/proc/{p}/cwd").resolve() == src.resolve() for p in workers)  # the Bento's code
        bento.stop()
    except BaseException:
        bento.kill()
        raise

    served = _Served([str(BIN / "recsys"), "serve", "--model", tag, "--store", f"sqlite:///{tmp_path / 'state.db'}",
                      "--api-key", ADMIN, "--public-key", PUBLIC], env=env, cwd=ROOT, log=tmp_path / "serve.log")
    try:
        served.wait_ready()
        status, from_recsys = _call(f"{served.url}/recommend", ask)
        assert status == 200, from_recsys
        served.stop()
    except BaseException:
        served.kill()
        raise
    assert json.loads(from_bento) == json.loads(from_recsys)
    assert json.loads(from_bento)["items"]  # a personalised list, not an empty one
