"""The service keeps the promises of its OpenAPI document: schemathesis, every check, in-process.

Every operation of ``/docs.json`` is exercised by schemathesis' examples, coverage and fuzzing phases
(positive and negative data: wrong types, missing fields, extra fields, no key, a wrong key, undocumented
methods) and then by its stateful phase, which follows the document's links (an item from one answer
feeds ``/similar``, ``/complements`` and a cart event; an event's customer feeds ``/recommend`` and
``/admin/erase``).  All checks run, among them: no 5xx, every status code documented, every body matching
its schema, schema-violating requests refused, auth enforced where declared.  Examples per operation are
capped so the module runs in well under a minute; ``-m slow`` runs a long variant.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from recsys.bundle import Bundle
from recsys.registry import Registry

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is part of the test extra")

pytestmark = pytest.mark.integration
ADMIN, PUBLIC = "openapi-admin-key", "openapi-public-key"


def _config(max_examples: int) -> Any:
    return schemathesis.Config.from_dict({
        "seed": 20261204,
        "cache": {"enabled": False},  # no .schemathesis/ folder: every run starts from the document alone
        "auth": {"openapi": {"ApiKey": {"api_key": ADMIN}}},
        "generation": {"max-examples": max_examples, "database": "none"},
        "phases": {"stateful": {"max-steps": 6}},
        "operations": [{
            # Schema-valid events can still name an item the catalogue lacks or a time outside the
            # accepted window: documented 422s that no JSON schema can express.
            "include-path": "/events",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 422]}},
        }, {
            # (a consent time after now plus the clock skew: a documented 422 too)
            "include-path-regex": "^/(consent|unsubscribe)$",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 422]}},
        }],
    })


@pytest.fixture(scope="module")
def app(synthetic_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory, fresh_bentoml_metrics: None):  # type: ignore[no-untyped-def]
    """The service's ASGI app, started by schemathesis' own ASGI client (which keeps one lifespan per
    app for the process; a second client of ours would start a second service instance)."""
    from schemathesis.python import asgi as st_asgi

    reg = Registry()
    tag = reg.save(Bundle.load(synthetic_bundle_dir).write_into, metadata={"headline": {"all.map": 0.1}},
                   version="openapi-v1")
    state_dir = tmp_path_factory.mktemp("openapi-state")
    saved = dict(os.environ)
    os.environ.update({"RECSYS_STORE_URI": f"sqlite:///{state_dir / 'state.db'}", "RECSYS_API_KEY": ADMIN,
                       "RECSYS_PUBLIC_KEY": PUBLIC, "RECSYS_MODEL": tag, "RECSYS_WATCH_SECONDS": "5"})
    from serving.service import CrossSell

    asgi = CrossSell.to_asgi()
    try:
        yield asgi
    finally:
        st_asgi.shutdown_lifespans()  # runs the service's shutdown hook (stops its threads)
        os.environ.clear()
        os.environ.update(saved)


def _run(asgi: Any, max_examples: int) -> tuple[dict[str, int], list[str]]:
    """One schemathesis run (every phase the document allows, every check): cases per phase, failures."""
    from schemathesis.engine import Status, events, from_schema

    schema = schemathesis.openapi.from_asgi("/docs.json", asgi, config=_config(max_examples))
    cases: dict[str, int] = {}
    failures: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            phase = str(event.phase.value if hasattr(event.phase, "value") else event.phase)
            cases[phase] = cases.get(phase, 0) + len(event.recorder.cases)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        f = check.failure_info
                        failures.append(f"{phase} {event.label} {check.name}: {f.failure.title}\n"
                                        f"{f.failure.message}\n{f.code_sample}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            failures.append(f"error: {event.info.format() if hasattr(event, 'info') else event}")
    return cases, failures


def test_schemathesis_run_finds_nothing(app: Any) -> None:
    cases, failures = _run(app, 20)
    print(f"schemathesis: {sum(cases.values())} cases {cases}, {len(failures)} failures")
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    assert cases.get("stateful", 0) > 0, cases  # the links give the stateful phase something to run


@pytest.mark.slow
def test_schemathesis_long_run_finds_nothing(app: Any) -> None:
    cases, failures = _run(app, 300)
    assert not failures, "\n\n".join(dict.fromkeys(failures))


def test_document_states_keys_bodies_and_errors(app: Any) -> None:
    """The parts of the document a client generator relies on, checked directly."""
    from schemathesis.python import asgi as st_asgi

    with st_asgi.get_client(app) as client:
        spec = client.get("/docs.json").json()
        page = client.get("/docs")
        asset = client.get("/docs/static/swagger-ui-bundle.js")
        escape = client.get("/docs/static/..%2Fservice.py")
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "x-api-key",
        "description": "The public or the admin key (see each route)."}
    for path in ("/recommend", "/complements", "/similar", "/popular", "/events", "/admin/erase"):
        op = spec["paths"][path]["post"]
        assert op["requestBody"]["required"] is True, path
        assert {"400", "413", "415", "422"} <= set(op["responses"]), path
    assert spec["paths"]["/recommend"]["post"]["security"] == []  # reads are open by default
    for path in ("/events", "/admin/erase", "/admin/consent", "/admin/reload"):
        assert spec["paths"][path]["post"]["security"] == [{"ApiKey": []}]
        assert {"401", "403"} <= set(spec["paths"][path]["post"]["responses"])
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert error["properties"]["detail"]["type"] == "array"
    customer = spec["components"]["schemas"]["RecommendRequest"]["properties"]["customer_id"]
    assert {"type": "null"} in customer["anyOf"]  # null is accepted, and the document says so
    assert page.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in page.text
    assert asset.status_code == 200 and escape.status_code == 404
