"""The ``recsys data`` commands as a user runs them (in-process via typer's runner)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def _folder(tmp_path: Path, interactions: str) -> Path:
    (tmp_path / "interactions.csv").write_text(interactions)
    (tmp_path / "items.csv").write_text("item_id,category\nA,trousers\nB,belts\n")
    (tmp_path / "customers.csv").write_text("customer_id,email_consent\nc1,true\n")
    return tmp_path


CANONICAL = Path(__file__).resolve().parents[2] / "configs" / "datasets" / "canonical-files.yaml"


def test_validate_ok_and_stats(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "customer_id,item_id,ts,order_id\nc1,A,2025-01-01,o1\nc1,B,2025-01-09,o2\n")
    result = runner.invoke(app, ["data", "validate", "-d", str(CANONICAL), "--data-path", str(folder)])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output and "2 interactions" in result.output
    result = runner.invoke(app, ["data", "stats", "-d", str(CANONICAL), "--data-path", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    assert '"repeat_buyer_share": 1.0' in result.output


def test_validate_bad_file_exit_2_names_file_column_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "customer_id,item_id,ts\nc1,A,2025-01-01\nc1,B,yesterday\n")
    result = runner.invoke(app, ["data", "validate", "-d", str(CANONICAL), "--data-path", str(folder)])
    assert result.exit_code == 2
    assert "interactions.csv: column 'ts': 1 row with an unparseable date; first at line 3" in result.output
    lenient = runner.invoke(app, ["data", "validate", "-d", str(CANONICAL), "--data-path", str(folder), "--lenient"])
    assert lenient.exit_code == 0 and "1 interactions" in lenient.output


def test_unknown_dataset_name_lists_known() -> None:
    result = runner.invoke(app, ["data", "stats", "-d", "nope"])
    assert result.exit_code == 2 and "completejourney" in result.output


def test_demo_trains_and_promotes(tmp_path: Path) -> None:
    small = tmp_path / "train.yaml"  # the shipped config, with a smaller ranker to keep the suite fast
    small.write_text((CANONICAL.parents[1] / "train.yaml").read_text().replace("max_iter: 80", "max_iter: 20"))
    overrides = CANONICAL.parents[1] / "complements_overrides.yaml"  # named relative to the config: beside it
    (tmp_path / overrides.name).write_text(overrides.read_text())
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path), "--no-serve", "--config", str(small)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "shop.sqlite").exists()
    assert "loaded and validated" in result.output and "trained in" in result.output
    assert "baseline:buy_again_then_popular" in result.output
