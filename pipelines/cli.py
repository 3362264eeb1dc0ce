"""The ``recsys`` console entry point: one command, one subcommand per job.

Names and flags here are a contract with outside tools (schedulers, evaluators): keep them stable.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit asks for single-threaded BLAS
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import typer  # noqa: E402

from pipelines import campaign, data, demo, erase, experiment, models, recommend, report, segments, serve, train  # noqa: E402, E501
from pipelines import complements as complements_cli  # noqa: E402
from pipelines import consent as consent_cli  # noqa: E402
from pipelines._common import setup_logging  # noqa: E402

app = typer.Typer(
    name="recsys",
    help="Cross-sell engine: data, training, evaluation, serving and campaigns.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.command("demo")(demo.demo)
app.command("train")(train.train_cmd)
app.command("recommend")(recommend.recommend_cmd)
app.add_typer(models.app, name="models")
app.command("serve")(serve.serve_cmd)
app.command("report")(report.report_cmd)
app.command("erase")(erase.erase_cmd)
app.command("segments")(segments.segments_cmd)
app.add_typer(campaign.app, name="campaign")
app.command("audience")(campaign.audience_cmd)
app.add_typer(consent_cli.app, name="consent")
app.add_typer(complements_cli.app, name="complements")  # export the category-complement map
app.command("kpis")(experiment.kpis_cmd)  # campaign KPIs, or --experiment NAME: the read-out per arm


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    setup_logging(verbose)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
