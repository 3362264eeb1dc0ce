"""``recsys report``: a self-contained HTML page and a Markdown twin built from one real trained bundle."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from pipelines.report import report_cmd
from recsys.config import TrainConfig
from recsys.data.synthetic import generate_shop
from recsys.registry import Registry
from recsys.reporting import ReportPaths, render_report, write_report
from recsys.training import TrainResult, train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TAG = "crosssell:report-test"


class _Tables(HTMLParser):
    """Cell texts of every table, by the id of the enclosing section: {section: [[cell, …], …]}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str | None]] = []
        self._section = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("id") or ""
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.setdefault(self._section, []).append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _Tables:
    parser = _Tables()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def trained() -> TrainResult:
    cfg = TrainConfig.model_validate({
        "seed": 0,
        "ranker": {"max_iter": 20},
        "generators": {name: {"candidates": 20} for name in
                       ("popularity", "copurchase", "category_complements", "category_affinity", "item_knn")},
        "baselines": ["popularity_global", "popularity_decayed", "buy_again_then_popular", "item_knn"],
    })
    return train(generate_shop(seed=0, n_customers=800).dataset, cfg, progress=False)


@pytest.fixture(scope="module")
def written(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    return write_report(trained.bundle, tmp_path_factory.mktemp("reports"), tag=TAG)


def test_writes_html_markdown_and_pngs_into_the_version_folder(written: ReportPaths) -> None:
    assert written.directory.name == "report-test"
    assert written.html == written.directory / "report.html" and written.html.is_file()
    assert written.markdown == written.directory / "report.md" and written.markdown.is_file()
    assert {p.name for p in written.images} == {"segments.png", "segments_value.png", "curve.png", "categories.png",
                                                 "cohorts.png", "kpi_trends.png"}
    for png in written.images:
        assert png.parent == written.directory and png.read_bytes()[:8] == PNG_MAGIC


def test_html_is_self_contained_and_accessible(written: ReportPaths) -> None:
    html = written.html.read_text(encoding="utf-8")
    assert 'src="http' not in html and "src='http" not in html and "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html and "url(" not in html
    assert '<html lang="en">' in html and 'name="viewport"' in html
    images = _parse(html).images
    assert len(images) == len(written.images)
    for img in images:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
        assert len(img.get("alt") or "") > 40  # alt text states what the chart shows


def test_metrics_table_lists_every_model_served_first(written: ReportPaths, trained: TrainResult) -> None:
    rows = _parse(written.html.read_text(encoding="utf-8")).rows["metrics"]
    shown = [r[0] for r in rows[1:] if len(r) > 1]  # first row is the header; group rows have one cell
    assert set(shown) == set(trained.metrics["model"])
    assert shown[:2] == ["served", "served_new_only"]
    first_generator = next(i for i, m in enumerate(shown) if m.startswith("generator:"))
    assert all(m.startswith("generator:") for m in shown[first_generator:])
    assert any(m.startswith("baseline:") for m in shown[:first_generator])
    md = written.markdown.read_text(encoding="utf-8")
    for model in trained.metrics["model"].unique():
        assert re.search(rf"^\| (\*\*)?{re.escape(model)}(\*\*)? \|", md, re.M), model


def test_headline_shows_the_bundles_numbers_and_ratio(written: ReportPaths, trained: TrainResult) -> None:
    html = written.html.read_text(encoding="utf-8")
    md = written.markdown.read_text(encoding="utf-8")
    headline = trained.bundle.manifest["headline"]
    served = headline["all.map"]
    base = trained.metrics.filter((pl.col("model") == "baseline:buy_again_then_popular")
                                  & (pl.col("variant") == "all"))["map"][0]
    for text in (html, md):
        assert f"{served:.4f}" in text
        assert f"{headline['new.map']:.4f}" in text and f"{headline['category.map']:.4f}" in text
        assert f"{served / base:.2f}×" in text
    # the served row of the metrics table carries the same value and the ratio column
    row = next(r for r in _parse(html).rows["metrics"] if r[0] == "served")
    assert f"{served:.4f}" in row[1] and f"{served / base:.2f}×" in row
    baseline_row = next(r for r in _parse(html).rows["metrics"] if r[0] == "baseline:buy_again_then_popular")
    assert "1.00×" in baseline_row


def test_best_value_of_each_column_is_highlighted(written: ReportPaths, trained: TrainResult) -> None:
    html = written.html.read_text(encoding="utf-8")
    best_map = trained.metrics.filter(pl.col("variant") == "all")["map"].max()
    assert f'<td class="num best">{best_map:.4f}' in html
    worst_map = trained.metrics.filter(pl.col("variant") == "all")["map"].min()
    assert f'<td class="num best">{worst_map:.4f}' not in html
    assert f"**{best_map:.4f}**" in written.markdown.read_text(encoding="utf-8")


def test_complements_show_the_planted_directional_pair(written: ReportPaths, trained: TrainResult) -> None:
    assert "category_complements" in trained.bundle.hybrid.generators
    rows = _parse(written.html.read_text(encoding="utf-8")).rows["complements"]
    trousers = next(r for r in rows if r[0] == "trousers")
    planted = [cell for cell in trousers[1:] if re.match(r"→ (belts|shoes)\b", cell)]
    assert planted and all(re.search(r"lift \d+\.\d\d · support \d", cell) for cell in planted)
    assert len(rows) - 1 <= 15 and all(len(r) == 4 for r in rows)
    md = written.markdown.read_text(encoding="utf-8")
    line = next(x for x in md.splitlines() if x.startswith("| trousers |"))
    assert "→ belts (lift" in line or "→ shoes (lift" in line


def test_same_bundle_renders_identically(written: ReportPaths, trained: TrainResult) -> None:
    """Reports diff cleanly: no timestamps or renderer metadata sneak into the HTML or the PNGs."""
    again = render_report(trained.bundle, tag=TAG)
    assert again.html == written.html.read_text(encoding="utf-8")
    assert {img.filename: img.png for img in again.images} == {p.name: p.read_bytes() for p in written.images}


def test_markdown_references_existing_pngs(written: ReportPaths) -> None:
    md = written.markdown.read_text(encoding="utf-8")
    refs = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", md)
    assert sorted(refs) == sorted(p.name for p in written.images)
    for ref in refs:
        assert (written.markdown.parent / ref).read_bytes()[:8] == PNG_MAGIC


def _bare_bundle(source: str, *, categories: int) -> SimpleNamespace:
    metrics = pl.DataFrame({
        "model": ["served", "served", "baseline:buy_again_then_popular", "baseline:buy_again_then_popular"],
        "variant": ["all", "new"] * 2, "k": [5] * 4, "n_customers": [10, 4, 10, 4],
        "map": [0.3, 0.1, 0.2, 0.0], "ndcg": [0.4, 0.2, 0.3, 0.0],
    })
    manifest = {"created": "2025-01-02T03:04:05", "config": {"k": 5}, "headline": {"all.map": 0.3},
                "data_summary": {"source": source, "categories": categories, "top_categories": []}}
    return SimpleNamespace(manifest=manifest, tables={"metrics": metrics},
                           hybrid=SimpleNamespace(generators={}))


def test_rewrite_replaces_the_folder_whole(tmp_path: Path) -> None:
    bundle = _bare_bundle("shop.csv", categories=0)
    first = write_report(bundle, tmp_path, tag=TAG)
    (first.directory / "stale.txt").write_text("old")
    second = write_report(bundle, tmp_path, tag=TAG)
    assert second.directory == first.directory and not (second.directory / "stale.txt").exists()
    assert second.html.read_text(encoding="utf-8") == first.html.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["report-test"]  # no temp folders left behind


def test_without_categories_or_tables_the_report_says_so() -> None:
    rendered = render_report(_bare_bundle("shop.csv", categories=0), tag="crosssell:bare")
    for text in (rendered.html, rendered.markdown):
        assert "No categories in this dataset" in text
        assert "not recorded in this bundle" in text  # segments and curve tables are absent
        assert "0.3000" in text and "1.50×" in text
        assert "likely but unconfirmed" not in text
    assert rendered.images == [] and "data:image" not in rendered.html
    assert "—" in rendered.html  # the zero baseline on "new" gives no ratio, not a division error


def test_complete_journey_source_carries_the_provenance_caveat() -> None:
    bundle = _bare_bundle("completejourney:/data/completejourney", categories=303)
    rendered = render_report(bundle, tag="x:v1")
    for text in (rendered.html, rendered.markdown):
        assert "likely but unconfirmed" in text
        assert "not enabled" in text  # categories exist, the complement model just was not trained


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("report")(report_cmd)
    app.callback()(lambda: None)  # keep "report" as a sub-command, as in `recsys report`
    return app


def test_cli_writes_both_files(trained: TrainResult, tmp_path: Path) -> None:
    tag = Registry().save(trained.bundle.write_into, version="cli-report",
                          metadata={"headline": trained.bundle.manifest["headline"]})
    res = CliRunner().invoke(_cli(), ["report", tag, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    html, md = tmp_path / "cli-report" / "report.html", tmp_path / "cli-report" / "report.md"
    assert html.is_file() and md.is_file()
    assert str(html) in res.output and str(md) in res.output
    assert tag in html.read_text(encoding="utf-8")


def test_cli_unknown_tag_exits_2_with_a_message(tmp_path: Path) -> None:
    res = CliRunner().invoke(_cli(), ["report", "no-such-version", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "crosssell:no-such-version not found" in res.output
    assert list(tmp_path.iterdir()) == []
