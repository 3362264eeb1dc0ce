"""Relationship KPIs on a hand-made shop with the answer worked out by hand, the CLI, and the report's
new pictures (cohort heatmap, KPI trends, MAP per value segment and lifecycle stage)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recsys.dataset import Dataset
from recsys.segments import cohort_retention, relationship_kpis, relationship_tables


def _shop() -> Dataset:
    """a: 10 on 5 Jan, 10 Feb, 15 Mar · b: 30 on 20 Jan · c: 20 on 1 Feb and 1 Jun."""
    rows = [("a", "2025-01-05", 10.0), ("a", "2025-02-10", 10.0), ("a", "2025-03-15", 10.0),
            ("b", "2025-01-20", 30.0), ("c", "2025-02-01", 20.0), ("c", "2025-06-01", 20.0)]
    inter = pl.DataFrame({"customer_id": [r[0] for r in rows], "item_id": ["i1"] * len(rows),
                          "ts": [datetime.fromisoformat(r[1]) for r in rows], "price": [r[2] for r in rows],
                          "order_id": [f"o{k}" for k in range(len(rows))]})
    return Dataset(inter, pl.DataFrame({"item_id": ["i1"], "category": ["x"], "price": [10.0]}), source="hand")


def test_monthly_kpis_match_the_hand_computed_answer() -> None:
    k = relationship_kpis(_shop(), period="month", churn_days=30)
    assert k["period"].to_list() == [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1), date(2025, 6, 1)]
    assert k["customers"].to_list() == [2, 2, 1, 1]
    assert k["new_customers"].to_list() == [2, 1, 0, 0]
    assert k["returning_share"].to_list() == [0.0, 0.5, 1.0, 1.0]
    assert k["repeat_purchase_rate"].to_list() == pytest.approx([0.0, 1 / 3, 1 / 3, 2 / 3])
    # Jan: fewer than 30 days of history; Feb: a and b alive, b lapsed; Mar: a and c alive, c lapsed;
    # Jun: nobody alive at the start
    assert k["churn_rate"].to_list() == [None, 0.5, 0.5, None]
    assert k["aov"].to_list() == pytest.approx([20.0, 15.0, 10.0, 20.0])
    assert k["avg_clv"].to_list() == pytest.approx([20.0, 70 / 3, 80 / 3, 100 / 3])


def test_cohort_retention_and_per_segment_kpis() -> None:
    c = cohort_retention(_shop(), period="month")
    assert c.select("cohort", "offset", "cohort_size", "retention").rows() == [
        (date(2025, 1, 1), 0, 2, 1.0), (date(2025, 1, 1), 1, 2, 0.5), (date(2025, 1, 1), 2, 2, 0.5),
        (date(2025, 2, 1), 0, 1, 1.0), (date(2025, 2, 1), 4, 1, 1.0)]
    seg = pl.DataFrame({"customer_id": ["a", "b", "c"], "value_segment": ["top", "low", "top"]})
    by = relationship_kpis(_shop(), period="quarter", churn_days=30, segments=seg, by="value_segment")
    q1 = {r["value_segment"]: r for r in by.filter(pl.col("period") == date(2025, 1, 1)).iter_rows(named=True)}
    assert q1["low"]["customers"] == 1 and q1["low"]["revenue"] == 30.0
    assert q1["top"]["customers"] == 2 and q1["top"]["orders"] == 4 and q1["top"]["aov"] == pytest.approx(12.5)
    tables = relationship_tables(_shop(), segments=seg.with_columns(pl.lit("repeat").alias("lifecycle")))
    assert set(tables["relationship"]["grouping"]) == {"all", "value_segment", "lifecycle"}
    with pytest.raises(ValueError, match="period"):
        relationship_kpis(_shop(), period="fortnight")  # type: ignore[arg-type]


def test_cli_prints_relationship_kpis_and_writes_the_table(tmp_path: Path) -> None:
    from pipelines.cli import app

    out = tmp_path / "kpis.csv"
    r = CliRunner().invoke(app, ["kpis", "--dataset", "synthetic", "--by", "lifecycle", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "repeat" in r.output and "retention by first-purchase cohort" in r.output
    table = pl.read_csv(out)
    assert {"period", "lifecycle", "repeat_purchase_rate", "churn_rate", "aov", "avg_clv"} <= set(table.columns)
    bad = CliRunner().invoke(app, ["kpis", "--dataset", "synthetic", "--by", "colour"])
    assert bad.exit_code != 0 and "--by" in bad.output


def test_report_draws_cohorts_kpi_trends_and_value_segments(synthetic_bundle_dir: Path) -> None:
    from recsys.bundle import Bundle
    from recsys.data.synthetic import generate_shop
    from recsys.reporting import render_report

    bundle = Bundle.load(synthetic_bundle_dir)
    bundle.tables.update(relationship_tables(generate_shop(seed=0).dataset))  # (what training now stores)
    report = render_report(bundle, tag="crosssell:test")
    names = {img.name for img in report.images}
    assert {"cohorts", "kpi_trends"} <= names
    if "value_segment" in set(bundle.tables["segments"]["grouping"]):
        assert "segments_value" in names
    assert 'id="relationship"' in report.html and "data:image/png;base64" in report.html
    assert "cohorts.png" in report.markdown and "kpi_trends.png" in report.markdown


def test_relationship_tables_leave_no_purchase_lines_resident() -> None:
    """The lines cached for one computation are dropped after it (a training run fits its served models
    next: at H&M size the lines were 2.6 GB held to the end), and with their dataset in any case."""
    import gc

    from recsys.segments import _lines

    shop = _shop()
    relationship_tables(shop)
    assert _lines._CACHE is None
    lines = _lines.purchase_lines(shop)  # cached by a caller that wants it: kept through a scope
    with _lines.lines_scope(shop):
        assert _lines.purchase_lines(shop) is lines
    assert _lines._CACHE is not None and _lines._CACHE[1] is lines
    del shop
    gc.collect()
    assert _lines._CACHE is None
