"""facebias.report: the results table of a sweep, its files, its errors and its CLI (no training)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from facebias.errors import FacebiasError, ReportError
from facebias.report.build import write_report
from facebias.report.render import format_html, format_markdown, notes
from facebias.report.table import METRICS, natural_key, results_table

SCHEDULES = {"one_stage": ["1e-05"], "two_stage": ["0.0001", "1e-05"], "three_stage": ["0.0001", "1e-05", "1e-05"]}


def make_run(
    run_id: str,
    experiment: str | None,
    metrics: dict[str, float] | None,
    *,
    status: str = "FINISHED",
    backbone: str = "resnet50",
    head: str = "mlp",
    schedule: str = "three_stage",
    seed: int = 0,
    digest: str = "d1",
    split: str = "test",
    tags: dict[str, str] | None = None,
) -> dict[str, object]:
    """One row the way mlflow.search_runs spells it (`tags`: more tags, without `tags.`)."""
    row: dict[str, object] = {
        "run_id": run_id,
        "status": status,
        "tags.facebias.experiment": "None" if experiment is None else experiment,
        "tags.mlflow.runName": f"{backbone}-{head}-{schedule}-group",
        "tags.facebias.backbone": backbone,
        "tags.facebias.head": head,
        "tags.facebias.data": "synthetic",
        "tags.facebias.dataset_digest": digest,
        "tags.facebias.seed": str(seed),
        "params.backbone.name": backbone,
        "params.head.name": head,
        "params.schedule.name": schedule,
        "params.seed": str(seed),
    }
    row.update({f"tags.{name}": value for name, value in (tags or {}).items()})
    for position, lr in enumerate(SCHEDULES[schedule]):
        row[f"params.schedule.stages.{position}.lr"] = lr
    for name, value in (metrics or {}).items():
        row[f"metrics.{split}/{name}"] = value
    return row


def seeded_metrics(base: float, seed: int) -> dict[str, float]:
    return {name: base + 0.1 * index + 0.37 * seed**2 for index, (name, _) in enumerate(METRICS)}


@pytest.fixture
def children() -> pd.DataFrame:
    """exp10 (InceptionResNetV2, linear, one stage) and exp2 (ResNet50, MLP, three stages), 3 seeds each, 1 FAILED."""
    rows = [make_run(f"a{seed}", "exp10_irv2_linear_one_stage", seeded_metrics(15.0, seed),
                     backbone="inception_resnet_v2", head="linear", schedule="one_stage", seed=seed)
            for seed in range(3)]
    rows += [make_run(f"b{seed}", "exp2_resnet50_mlp_three_stage", seeded_metrics(9.0, seed), seed=seed)
             for seed in range(3)]
    rows.append(make_run("f0", "exp2_resnet50_mlp_three_stage", {"mae": 1000.0}, status="FAILED", seed=3))
    # a FAILED run has NaN where the finished ones have metrics, as in search_runs
    return pd.DataFrame(rows)


def test_results_table_aggregates_finished_runs_per_experiment(children: pd.DataFrame) -> None:
    table = results_table(children)

    assert list(table["Experiment"]) == ["exp2_resnet50_mlp_three_stage", "exp10_irv2_linear_one_stage"]
    assert list(table["n"]) == [3, 3]
    for position, base in ((0, 9.0), (1, 15.0)):
        for index, (name, column) in enumerate(METRICS):
            values = np.array([base + 0.1 * index + 0.37 * seed**2 for seed in range(3)])
            assert table.loc[position, column] == pytest.approx(values.mean())
            assert table.loc[position, f"{column} std"] == pytest.approx(values.std(ddof=1)), name
            half = T_975_2 * values.std(ddof=1) / np.sqrt(3)
            assert table.loc[position, f"{column} low"] == pytest.approx(values.mean() - half), name
            assert table.loc[position, f"{column} high"] == pytest.approx(values.mean() + half), name
    exp2, exp10 = table.iloc[0], table.iloc[1]
    assert (exp2["Backbone"], exp2["Head"], exp2["Stages"], exp2["Learning rates"]) == (
        "ResNet50", "MLP", 3, "1e-4, 1e-5, 1e-5")
    assert (exp10["Backbone"], exp10["Head"], exp10["Stages"], exp10["Learning rates"]) == (
        "InceptionResNetV2", "Linear", 1, "1e-5")


T_975_2 = 4.302652729911275
"""The 97.5 % quantile of Student's t with 2 degrees of freedom (tables): the 95 % interval of a mean of 3 runs."""


def test_cells_show_the_mean_and_its_interval(children: pd.DataFrame) -> None:
    single = pd.DataFrame([make_run("c0", "exp1_x", seeded_metrics(30.0, 0), schedule="two_stage")])
    with_interval = make_run("d0", "exp3_y", {**seeded_metrics(20.0, 0), "mae_ci_low": 19.0, "mae_ci_high": 21.5})
    table = results_table(pd.concat([children, single, pd.DataFrame([with_interval])], ignore_index=True))
    lines = format_markdown(table).splitlines()

    assert cells(lines[0])[:7] == ["Experiment", "Backbone", "Head", "Stages", "Learning rates", "MAE", "Age Bias"]
    assert [cells(line)[0] for line in lines[2:]] == ["exp1_x", "exp2_resnet50_mlp_three_stage", "exp3_y",
                                                      "exp10_irv2_linear_one_stage"]
    assert cells(lines[2])[5:7] == ["30.0000", "30.1000"] and "[" not in lines[2], "one run: the value, no interval"
    assert cells(lines[2])[4] == "1e-4, 1e-5"
    values = np.array([9.0 + 0.37 * seed**2 for seed in range(3)])
    half = T_975_2 * values.std(ddof=1) / np.sqrt(3)
    assert cells(lines[3])[5] == f"{values.mean():.4f} [{values.mean() - half:.2f}, {values.mean() + half:.2f}]"
    assert cells(lines[4])[5:7] == ["20.0000 [19.00, 21.50]", "20.1000"], "one run: its own bootstrap interval"
    assert table.loc[1, "MAE low"] == pytest.approx(values.mean() - half)
    assert np.isnan(table.loc[0, "MAE std"]) and np.isnan(table.loc[0, "MAE low"])
    assert table.attrs["interval"] == "mixed" and "1 run(s)" in table.attrs["no_best_set"]


def test_missing_experiment_tag_falls_back_to_run_name() -> None:
    rows = [make_run(f"r{seed}", None, seeded_metrics(9.0, seed), seed=seed) for seed in range(2)]
    table = results_table(pd.DataFrame(rows))
    assert list(table["Experiment"]) == ["resnet50-mlp-three_stage-group"]
    assert list(table["n"]) == [2]



def test_a_searchs_trials_are_rows_of_their_own_even_with_the_same_run_names() -> None:
    # Two trials of one search, two seeds each, differing only in a learning rate: their run names are the same.
    rows = [make_run(f"t{trial}s{seed}", None, seeded_metrics(9.0 + 3 * trial, seed), seed=seed,
                     tags={"facebias.trial": str(trial)}) for trial in (0, 1) for seed in (0, 1)]
    table = results_table(pd.DataFrame(rows))
    assert list(table["Experiment"]) == ["trial 0", "trial 1"]
    assert list(table["n"]) == [2, 2]
    assert list(table["MAE"]) == pytest.approx([9.0 + 0.37 / 2, 12.0 + 0.37 / 2])


def test_natural_order() -> None:
    names = ["exp10_a", "exp2_b", "exp1_c", "adhoc"]
    assert sorted(names, key=natural_key) == ["adhoc", "exp1_c", "exp2_b", "exp10_a"]


def cells(line: str) -> list[str]:
    """The cells of one Markdown table row."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def cell_with_text(page: str, text: str) -> str:
    """The opening <td …> tag of the (unique) cell whose text is `text`."""
    matches = re.findall(rf"(<td[^>]*>){re.escape(text)}</td>", page)
    assert len(matches) == 1, (text, matches)
    return matches[0]


def test_html_shades_nothing_without_a_best_set(children: pd.DataFrame) -> None:
    single = pd.DataFrame([make_run("c0", "exp1_x", {"mae": 30.0, "age_bias": 0.5, "gender_bias": 0.25,
                                                     "ethnicity_bias": 70.0, "expression_bias": 0.125})])
    table = results_table(pd.concat([children, single], ignore_index=True))
    page = format_html(table, "a title")

    assert "<title>a title</title>" in page and "No best set is marked: an experiment has 1 run(s)" in page
    assert "td.best, span.best { background: #c6efce; }" in page, "the legend's colours stay defined"
    cell = f"{table.loc[1, 'MAE']:.4f} [{table.loc[1, 'MAE low']:.2f}, {table.loc[1, 'MAE high']:.2f}]"
    for text in (cell, "30.0000", "0.5000", "70.0000"):
        assert cell_with_text(page, text).endswith(' num" >'), text


def test_write_report_writes_the_four_files(children: pd.DataFrame, tmp_path: Path) -> None:
    table = results_table(children)
    paths = write_report(table, tmp_path / "out", "Sweep abc, test split")

    assert [path.name for path in paths] == ["results.md", "results.csv", "results.html", "results.png"]
    assert all(path.stat().st_size > 0 for path in paths)
    assert paths[0].read_text().startswith("# Sweep abc, test split\n\n| Experiment ")
    csv = pd.read_csv(paths[1])
    assert csv["MAE"].tolist() == pytest.approx(table["MAE"].tolist(), abs=0, rel=1e-15)
    assert paths[3].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_children() -> None:
    empty = pd.DataFrame(columns=["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"])
    with pytest.raises(ReportError, match=r"^no runs found for sweep p123: it has no child runs"):
        results_table(empty, parent_run_id="p123")


def test_only_failed_children_are_counted_by_status() -> None:
    rows = [make_run("f1", "exp1", None, status="FAILED"), make_run("f2", "exp2", None, status="FAILED"),
            make_run("k1", "exp3", None, status="KILLED")]
    with pytest.raises(ReportError) as raised:
        results_table(pd.DataFrame(rows), parent_run_id="p123")
    message = str(raised.value)
    assert message.startswith("no runs found for sweep p123: none of its 3 child runs is FINISHED")
    assert "(2 FAILED, 1 KILLED, 0 RUNNING)" in message
    assert isinstance(raised.value, FacebiasError)


def test_missing_metrics_name_the_runs() -> None:
    rows = [make_run("ok1", "exp1", seeded_metrics(9.0, 0)), make_run("old1", "exp2", {"mae": 9.0})]
    with pytest.raises(ReportError, match=r"1 finished run\(s\) of the sweep have no test/age_bias, .*"
                                          r"exp2 \(run old1\) — probably runs that crashed"):
        results_table(pd.DataFrame(rows))
    with pytest.raises(ReportError, match=r"have no val/mae, val/age_bias"):
        results_table(pd.DataFrame([make_run("ok1", "exp1", seeded_metrics(9.0, 0))]), split="val")


def test_mixed_datasets_are_refused() -> None:
    rows = [make_run("a", "exp1", seeded_metrics(9.0, 0), digest="aaa"),
            make_run("b", "exp2", seeded_metrics(9.0, 0), digest="bbb")]
    with pytest.raises(ReportError, match=r"do not share their data \(facebias.dataset_digest is aaa, bbb\).*"
                                          r"--parent RUN_ID"):
        results_table(pd.DataFrame(rows), parent_run_id="p1")


SAME_ENVIRONMENT = {"facebias.version.python": "3.11.7", "facebias.version.tensorflow": "2.21.0",
                    "facebias.version.keras": "3.15.1", "facebias.version.numpy": "2.4.6",
                    "facebias.version.mlflow": "3.17.2", "facebias.cpu_threads": "2"}


def test_runs_that_computed_with_other_versions_or_threads_are_warned_about() -> None:
    older = {**SAME_ENVIRONMENT, "facebias.version.tensorflow": "2.20.0", "facebias.cpu_threads": "16"}
    rows = [make_run("a0", "exp1", seeded_metrics(9.0, 0), tags=SAME_ENVIRONMENT),
            make_run("a1", "exp1", seeded_metrics(9.0, 1), seed=1, tags=SAME_ENVIRONMENT),
            make_run("b0", "exp2", seeded_metrics(9.0, 0), tags=older),
            make_run("c0", "exp3", seeded_metrics(9.0, 0)),  # made before runs recorded their environment
            make_run("f0", "exp3", {"mae": 1.0}, status="FAILED", seed=1,
                     tags={**SAME_ENVIRONMENT, "facebias.version.numpy": "1.26.4"})]  # not in the table
    table = results_table(pd.DataFrame(rows))
    differences = [
        "facebias.version.python 3.11.7 (3 runs), not recorded (1 run)",
        "facebias.version.tensorflow 2.20.0 (1 run), 2.21.0 (2 runs), not recorded (1 run)",
        "facebias.version.keras 3.15.1 (3 runs), not recorded (1 run)",
        "facebias.version.numpy 2.4.6 (3 runs), not recorded (1 run)",
        "facebias.version.mlflow 3.17.2 (3 runs), not recorded (1 run)",
        "facebias.cpu_threads 2 (2 runs), 16 (1 run), not recorded (1 run)"]
    assert table.attrs["environment_differences"] == differences
    assert notes(table)[0] == (
        f"Warning: the runs differ in what they computed with ({'; '.join(differences)}): the same config and "
        "seed need not give the same numbers there, so part of a difference between experiments can be the "
        "environment's; compare runs made with the same versions and CPU threads.")


def test_runs_of_one_environment_or_of_none_recorded_get_no_warning() -> None:
    for tags in (SAME_ENVIRONMENT, None):
        rows = [make_run(f"a{seed}", "exp1", seeded_metrics(9.0, seed), seed=seed, tags=tags) for seed in range(2)]
        table = results_table(pd.DataFrame(rows))
        assert table.attrs["environment_differences"] == []
        assert not any(note.startswith("Warning") for note in notes(table))


def test_val_split_reads_val_metrics() -> None:
    rows = [make_run("v", "exp1", seeded_metrics(5.0, 0), split="val")]
    assert results_table(pd.DataFrame(rows), split="val")["MAE"].tolist() == [5.0]


# --------------------------------------------------------------------------------------- CLI on a real SQLite store


def make_store(tmp_path: Path, with_sweep: bool = True,
               environments: tuple[dict[str, str], ...] = ({}, {})) -> tuple[str, str | None]:
    """A SQLite MLflow store with experiment 'facebias' and (optionally) a finished 2-experiment × 2-seed sweep, the
    runs of seed s with the tags `environments[s]`."""
    from mlflow.tracking import MlflowClient

    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("facebias", artifact_location=(tmp_path / "artifacts").as_uri())
    if not with_sweep:
        return uri, None
    parent = client.create_run(experiment_id, run_name="sweep", tags={"facebias.role": "sweep"})
    parent_id = parent.info.run_id
    for experiment, schedule, base in (("exp7_resnet50_mlp_three_stage", "three_stage", 9.0),
                                       ("exp5_resnet50_mlp_two_stage", "two_stage", 9.5)):
        for seed in range(2):
            row = make_run("", experiment, seeded_metrics(base, seed), schedule=schedule, seed=seed,
                           tags=environments[seed])
            tags = {key.removeprefix("tags."): str(value) for key, value in row.items() if key.startswith("tags.")}
            tags["mlflow.parentRunId"] = parent_id
            run = client.create_run(experiment_id, run_name=tags.pop("mlflow.runName"), tags=tags)
            for key, value in row.items():
                if key.startswith("params."):
                    client.log_param(run.info.run_id, key.removeprefix("params."), value)
                elif key.startswith("metrics."):
                    client.log_metric(run.info.run_id, key.removeprefix("metrics."), value)
            client.set_terminated(run.info.run_id, "FINISHED")
    crashed = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent_id, "error": "boom"})
    client.set_terminated(crashed.info.run_id, "FAILED")
    client.set_terminated(parent_id, "FINISHED")
    return uri, parent_id


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facebias.report", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=cli_env())


def cli_env() -> dict[str, str]:
    import os

    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def test_cli_reports_a_sweep_and_logs_it_to_the_parent(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri, parent_id = make_store(tmp_path, environments=(SAME_ENVIRONMENT,
                                                        {**SAME_ENVIRONMENT, "facebias.cpu_threads": "16"}))
    out = tmp_path / "report-out"
    result = run_cli(tmp_path, "--tracking-uri", uri, "--out", str(out))

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "warning: the runs differ in what they computed with (facebias.cpu_threads 2 (2 runs), 16 (2 runs)): ")
    lines = result.stdout.splitlines()
    assert cells(lines[0])[0] == "Experiment"
    assert cells(lines[2])[:5] == ["exp5_resnet50_mlp_two_stage", "ResNet50", "MLP", "2", "1e-4, 1e-5"]
    assert cells(lines[3])[:5] == ["exp7_resnet50_mlp_three_stage", "ResNet50", "MLP", "3", "1e-4, 1e-5, 1e-5"]
    assert cells(lines[3])[-1] == "2" and "[" in lines[3]
    assert sorted(path.name for path in out.iterdir()) == ["results.csv", "results.html", "results.md",
                                                          "results.png"]
    artifacts = {item.path for item in MlflowClient(uri).list_artifacts(parent_id, "report")}
    assert artifacts == {"report/results.csv", "report/results.html", "report/results.md", "report/results.png"}


def test_an_unknown_parent_and_an_out_that_is_a_file_are_one_sentence(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from facebias.report.__main__ import main as report_main

    uri, _ = make_store(tmp_path)
    (tmp_path / "taken.txt").write_text("")
    missing = "0123456789abcdef0123456789abcdef"
    assert report_main([f"tracking_uri={uri}", f"parent={missing}", "log=false", f"out={tmp_path / 'r'}"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (  # after MLflow's lines opening the store
        f"error: no run '{missing}' in {uri}: give the run id of a sweep's parent (the sweep prints it as it ends), "
        "or leave parent unset for the most recent sweep.")
    assert report_main([f"tracking_uri={uri}", "log=false", f"out={tmp_path / 'taken.txt'}"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: out={tmp_path / 'taken.txt'} is a file: give the folder to write the report into (created if "
        "needed).")
    assert not (tmp_path / "r").exists()


def test_cli_error_on_an_empty_experiment(tmp_path: Path) -> None:
    uri, _ = make_store(tmp_path, with_sweep=False)
    result = run_cli(tmp_path, "--tracking-uri", uri, "--no-log")

    assert result.returncode == 1
    assert result.stdout == ""
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "no sweep found in experiment 'facebias'" in error_lines[0]
    assert "Traceback" not in result.stderr
