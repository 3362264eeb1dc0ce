"""The README's commands stay true: every `recsys …` line names real subcommands and flags, and the data
example reads back what it wrote.

Why a parser check rather than running every line: several lines train on Complete Journey or serve
until stopped (minutes each).  The commands that are cheap run for real below; for the rest, the CLI's own
parser is asked whether each subcommand and flag exists, so a renamed flag breaks this test, not a reader.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from pipelines.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[list[str]]:
    """`recsys …` commands of the README's bash blocks (continuation lines joined, comments and the
    `[optional]` brackets stripped)."""
    text = README.read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            line = re.sub(r"^\.venv/bin/", "", line)
            if not line.startswith("recsys "):
                continue
            line = line.replace("[", " ").replace("]", " ")
            out.append(shlex.split(line)[1:])
    return out


def _resolve(tokens: list[str]) -> tuple[Any, list[str]]:
    """The (click) command a token list reaches, and the tokens left for it.  Duck-typed: typer ships
    its own copy of click, so ``isinstance(…, click.Group)`` is not reliable."""
    cmd: Any = typer.main.get_command(app)
    rest = list(tokens)
    while hasattr(cmd, "commands") and rest and rest[0] in cmd.commands:
        cmd = cmd.commands[rest.pop(0)]
    return cmd, rest


def test_the_readme_has_commands() -> None:
    assert len(_commands()) >= 20


@pytest.mark.parametrize("tokens", _commands(), ids=lambda t: " ".join(t)[:60])
def test_every_readme_command_names_a_real_subcommand_and_flags(tokens: list[str]) -> None:
    cmd, rest = _resolve(tokens)
    assert not hasattr(cmd, "commands"), f"`recsys {' '.join(tokens)}`: no such subcommand"
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    flags = [t.split("=")[0] for t in rest if t.startswith("-") and not re.fullmatch(r"-\d.*", t)]
    unknown = [f for f in flags if f not in known]
    assert not unknown, f"`recsys {' '.join(tokens)}`: unknown flag(s) {unknown}; known: {sorted(known)}"


def test_the_data_example_reads_back_what_it_wrote(tmp_path: Path) -> None:
    """`recsys data generate --format parquet` then `recsys data stats -d canonical-files` on it, and the
    streamed H&M preset the same way."""
    runner = CliRunner()
    for args in (["--customers", "300", "--items", "60"], ["--preset", "hm", "--scale", "0.0005"]):
        out = tmp_path / args[1]
        res = runner.invoke(app, ["data", "generate", "--out", str(out), "--format", "parquet", *args])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["data", "stats", "-d", "canonical-files", "--data-path", str(out), "--json"])
        assert res.exit_code == 0, res.output
        assert pl.read_parquet(out / "interactions.parquet").height > 0
