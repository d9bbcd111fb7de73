"""Slurm for real: a one-node cluster (scripts/local_slurm.sh) and a team MLflow server on PostgreSQL
(scripts/team_server.sh). A three-seed quick sweep runs as one job array recording into the server; a job preempted
in stage 2 comes back by itself and continues its run; a job cancelled for good fails only itself. (The 8-experiment
grid itself runs once per test session, locally: tests/run/test_sweep.py; Slurm changes only how its jobs start.)

Skipped only on a machine that cannot run the daemons (not root, or not Debian); CI runs them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import NO_MODEL, QUICK_DATA
from mlflow.tracking import MlflowClient
from scipy import stats
from team_server import TeamServer, cannot_run_daemons, run_script

TEST_METRICS = ("test/mae", "test/age_bias", "test/gender_bias", "test/ethnicity_bias", "test/expression_bias")
GRID_PARALLELISM = 2
GRID_SEEDS = range(3)
"""More jobs than run at once, so that the array's limit shows; small_cnn keeps each job to seconds."""
GRID_EXPERIMENT = "slurm-grid"
"""The grid's own MLflow experiment: the team server is shared by every test of the session."""
SACCT_WAIT_S = 60
"""How long a job that ran may take to reach Slurm's accounting database."""
EPOCH_LINE = re.compile(r"^\d+/\d+ - ")
"""Keras' line at the end of an epoch (verbose=2)."""
PREEMPT_RUN = ["trainer=smoke", *QUICK_DATA, "schedule=three_stage", "schedule.stages.0.max_epochs=2",
               "trainer.max_epochs_cap=10", "trainer.deterministic=true", "trainer.verbose=2", NO_MODEL]
STAGE1_EPOCHS = 2
"""Stage 1 of PREEMPT_RUN runs its 2 epochs; stage 2 runs at least 6 (patience 5), a margin for the signal to
arrive in it on a busy machine."""


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The one-node Slurm cluster of scripts/local_slurm.sh, started if it does not run (and left running)."""
    reason = cannot_run_daemons()
    if reason:
        pytest.skip(reason)
    run_script("local_slurm.sh", "start")


def _sweep_dir(cwd: Path) -> Path:
    (folder,) = (cwd / "multirun").glob("*/*/")
    return folder


def _array_tasks(sweep_dir: Path) -> dict[int, str]:
    """Array task index → Slurm job id (<array>_<index>) of the jobs a sweep submitted; a sweep of one job is
    submitted as a plain job, task 0 (<job id>)."""
    names = [p.name for p in (sweep_dir / ".submitit").iterdir()]
    tasks = {int(name.split("_")[1]): name for name in names if re.fullmatch(r"\d+_\d+", name)}
    plain = [name for name in names if name.isdigit()]
    return tasks or ({0: plain[0]} if plain else {})


def _sacct(job: str, *fields: str, duplicates: bool = False) -> list[list[str]]:
    """The accounting rows of a job that ran: slurmctld hands them to slurmdbd on its own time, so an empty answer
    is asked again (for up to SACCT_WAIT_S) rather than taken for "no such job"."""
    command = ["sacct", "-j", job, "-X", "-n", "-P", "-o", ",".join(fields), *(["-D"] if duplicates else [])]
    deadline = time.monotonic() + SACCT_WAIT_S
    while True:
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
        if output.strip() or time.monotonic() > deadline:
            return [line.split("|") for line in output.splitlines()]
        time.sleep(1)


@pytest.fixture(scope="session")
def slurm_grid(slurm_cluster: None, team_server: TeamServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder from which a quick sweep over three seeds ran as one Slurm job array, 2 jobs at a time, into the
    team server."""
    cwd = tmp_path_factory.mktemp("slurm-grid")
    result = subprocess.run(
        [sys.executable, "-m", "facebias.train", "-m", "trainer=smoke", *QUICK_DATA, NO_MODEL, "sweep_name=seeds",
         f"tracking.experiment={GRID_EXPERIMENT}", f"seed={','.join(map(str, GRID_SEEDS))}", "hydra/launcher=slurm",
         "hydra.sweeper.max_batch_size=null",
         f"hydra.launcher.array_parallelism={GRID_PARALLELISM}"],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, **team_server.env()}, timeout=1500)
    (cwd / "sweep.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        pytest.fail(f"the quick sweep on Slurm failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return cwd


@pytest.fixture
def server_client(team_server: TeamServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    for key, value in team_server.env().items():
        monkeypatch.setenv(key, value)
    return MlflowClient(team_server.uri)


def _grid_runs(client: MlflowClient) -> tuple:
    experiment = client.get_experiment_by_name(GRID_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [run for run in runs if run.data.tags.get("facebias.role") == "sweep"]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def _most_at_once(intervals: list[tuple[str, str]]) -> int:
    """The most intervals [start, end) that overlap at one instant (ISO timestamps)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


@pytest.mark.slow
def test_the_grid_is_one_slurm_array_two_jobs_at_a_time(slurm_grid: Path) -> None:
    tasks = _array_tasks(_sweep_dir(slurm_grid))
    assert sorted(tasks) == list(GRID_SEEDS)
    (array,) = {job.split("_")[0] for job in tasks.values()}
    rows = _sacct(array, "JobID", "State", "Start", "End")
    assert sorted(row[0] for row in rows) == sorted(tasks.values())
    assert {row[1] for row in rows} == {"COMPLETED"}
    assert _most_at_once([(row[2], row[3]) for row in rows]) == GRID_PARALLELISM


@pytest.mark.slow
def test_the_grid_records_every_run_into_postgresql(slurm_grid: Path, server_client: MlflowClient,
                                                   team_server: TeamServer) -> None:
    parent, children = _grid_runs(server_client)
    assert (parent.info.run_name, parent.info.status) == ("seeds", "FINISHED")
    assert sorted(int(c.data.params["seed"]) for c in children) == list(GRID_SEEDS)
    assert {c.info.status for c in children} == {"FINISHED"}
    # the rows are in PostgreSQL itself: the parent and its children finished, each child with its 5 test metrics
    grid_runs = (f"SELECT run_uuid FROM runs WHERE experiment_id = (SELECT experiment_id FROM experiments "
                 f"WHERE name = '{GRID_EXPERIMENT}')")
    assert team_server.sql(f"SELECT status, count(*) FROM runs WHERE run_uuid IN ({grid_runs}) GROUP BY status") == [
        f"FINISHED|{len(GRID_SEEDS) + 1}"]
    counts = team_server.sql(f"SELECT count(DISTINCT run_uuid) FROM latest_metrics WHERE run_uuid IN ({grid_runs}) "
                             "AND key IN "
                             f"({', '.join(repr(m) for m in TEST_METRICS)}) GROUP BY key")
    assert counts == [str(len(GRID_SEEDS))] * len(TEST_METRICS)
    for child in children:
        assert set(TEST_METRICS) <= set(child.data.metrics)
        assert child.info.artifact_uri.startswith("mlflow-artifacts:"), "artifacts go through the server"
        predictions = pd.read_csv(server_client.download_artifacts(child.info.run_id, "predictions_test.csv",
                                                                   str(slurm_grid)))
        mae = (predictions["predicted_age"] - predictions["apparent_age"]).abs().mean()
        assert child.data.metrics["test/mae"] == pytest.approx(mae, rel=1e-6)


@pytest.mark.slow
def test_the_report_against_the_server_reproduces_the_sweeps_table(
    slurm_grid: Path, server_client: MlflowClient, team_server: TeamServer, tmp_path: Path
) -> None:
    result = subprocess.run([sys.executable, "-m", "facebias.report", "--tracking-uri", team_server.uri, "--experiment",
                             GRID_EXPERIMENT, "--out", str(tmp_path / "report"), "--no-log"], cwd=tmp_path,
                            capture_output=True, text=True, env={**os.environ, **team_server.env()}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = _grid_runs(server_client)
    attached = server_client.download_artifacts(parent.info.run_id, "report/results.csv", str(tmp_path))
    table = pd.read_csv(tmp_path / "report" / "results.csv")
    pd.testing.assert_frame_equal(table, pd.read_csv(attached))
    # one experiment over three seeds: its MAE cell is the mean of the children's test MAE, its interval a t interval
    maes = pd.Series([c.data.metrics["test/mae"] for c in children])
    (row,) = table.to_dict("records")
    assert (row["n"], row["MAE"]) == (len(GRID_SEEDS), pytest.approx(maes.mean(), rel=1e-12))
    assert row["MAE std"] == pytest.approx(maes.std(ddof=1), rel=1e-9)
    half_width = stats.t.ppf(0.975, len(maes) - 1) * maes.std(ddof=1) / len(maes) ** 0.5
    assert (row["MAE low"], row["MAE high"]) == pytest.approx((maes.mean() - half_width, maes.mean() + half_width))
    printed_rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line.startswith("| ")]
    assert printed_rows[1:] == [row["Experiment"]]


@pytest.mark.slow
def test_a_sweep_without_a_login_submits_nothing(slurm_cluster: None, team_server: TeamServer, tmp_path: Path,
                                                  server_client: MlflowClient) -> None:
    """The team server needs a login and none is given: one sentence and exit status 1 before anything is submitted
    (it used to submit every job, each failing on its own, and exit 0)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_TRACKING_")}
    result = subprocess.run(
        [sys.executable, "-m", "facebias.train", "-m", "trainer=smoke", *QUICK_DATA, "seed=0,1",
         f"tracking.uri={team_server.uri}", "tracking.experiment=slurm-no-login", "hydra/launcher=slurm",
         "hydra.sweeper.max_batch_size=null"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: the MLflow tracking server at {team_server.uri} requires a login: set MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD."]
    assert not (tmp_path / "multirun").exists(), "nothing was submitted (submitit writes its folder first)"
    assert server_client.get_experiment_by_name("slurm-no-login") is None


@pytest.mark.slow
def test_a_slurm_sweep_whose_every_job_failed_exits_1(slurm_cluster: None, tmp_path: Path) -> None:
    """Both jobs fail (an invalid learning rate) and Slurm sees them complete; without tracking there is no parent
    run to end FAILED, and the command still exits 1 naming them."""
    result = subprocess.run(
        [sys.executable, "-m", "facebias.train", "-m", "tracking=none", "schedule.stages.0.lr=-1,-2",
         "hydra/launcher=slurm", "hydra.sweeper.max_batch_size=null"], cwd=tmp_path, capture_output=True, text=True,
        env=os.environ.copy(), timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: all 2 job(s) of the sweep failed: job 0 (tracking=none schedule.stages.0.lr=-1): "
        "schedule.stages.0.lr=-1.0 is invalid (stage 1)")
    tasks = _array_tasks(_sweep_dir(tmp_path))
    assert sorted(tasks) == [0, 1]
    assert [_sacct(job, "State")[0][0] for _, job in sorted(tasks.items())] == ["COMPLETED", "COMPLETED"]


def _follow(path: Path, deadline: float) -> Iterator[str]:
    """The lines of a growing file, as they are written, until `deadline` (time.monotonic)."""
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} never appeared")
        time.sleep(0.1)
    with path.open() as stream:
        while time.monotonic() < deadline:
            line = stream.readline()
            if line.endswith("\n"):
                yield line
            else:
                time.sleep(0.05)
    pytest.fail(f"{path} did not print the expected line in time")


def _job_log(sweep_dir: Path, task: int, deadline: float) -> Path:
    while time.monotonic() < deadline:
        if (sweep_dir / ".submitit").is_dir() and task in _array_tasks(sweep_dir):
            job = _array_tasks(sweep_dir)[task]
            return sweep_dir / ".submitit" / job / f"{job}_0_log.out"
        time.sleep(0.2)
    pytest.fail(f"job {task} of the sweep in {sweep_dir} was never submitted")


def _release_when_requeued(job: str, deadline: float) -> None:
    """Once Slurm has requeued `job`, make it eligible at once: Slurm holds a requeued job back for about two
    minutes (its BeginTime), which only slows the test down."""
    while time.monotonic() < deadline:
        reason = subprocess.run(["squeue", "-h", "-j", job, "-o", "%r"], capture_output=True, text=True,
                                timeout=60).stdout.strip()
        if reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=60)
            return
        time.sleep(0.5)
    pytest.fail(f"Slurm job {job} was not requeued")


def _cancel_for_good(job: str) -> None:
    """`scancel JOB`, then at once what Slurm does KillWait seconds later (10 s on the test cluster): SIGKILL the
    processes of the job's steps. submitit ignores scancel's SIGTERM, and on a quiet machine a quick job can finish
    its run within KillWait, which would make it a job that was not cancelled in time, not one cancelled for good."""
    # the step processes are listed before scancel: once it is sent, Slurm may already have reaped them, and
    # `scontrol listpids` then fails for a job that has none left (seen in one clean-clone run)
    pids = _step_processes(job)
    subprocess.run(["scancel", job], check=True, timeout=60)
    _sigkill(pids)


def _step_processes(job: str) -> list[int]:
    """The processes of the job's steps (submitit's `srun` runs the job's Python in step 0), not its batch script."""
    (raw_id,) = subprocess.run(["squeue", "-h", "-j", job, "-o", "%A"], capture_output=True, text=True, check=True,
                               timeout=60).stdout.split()
    listed = subprocess.run(["scontrol", "listpids", raw_id], capture_output=True, text=True, check=True,
                            timeout=60).stdout
    return [int(pid) for pid, _, step, *_ in (line.split() for line in listed.splitlines()[1:]) if step != "batch"]


def _sigkill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def preempted_sweep(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A two-job Slurm sweep (seeds 0 and 1, resume=auto): job 0 is sent USR2 (what Slurm sends before preempting
    a job or at its time limit) right after its first stage-2 epoch, job 1 is cancelled for good after its first
    epoch. Beside it, seed 0 uninterrupted, locally. Returns the sweep folder, the reference folder, stderr."""
    cwd, reference = tmp_path_factory.mktemp("preempted"), tmp_path_factory.mktemp("uninterrupted")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (reference / "train.out").open("w") as out:
        local = subprocess.Popen([sys.executable, "-m", "facebias.train", *PREEMPT_RUN, "seed=0"], cwd=reference,
                                 stdout=out, stderr=subprocess.STDOUT, env=env)
    with (cwd / "sweep.err").open("w") as err:
        sweep = subprocess.Popen([sys.executable, "-m", "facebias.train", "-m", *PREEMPT_RUN, "seed=0,1",
                                  "resume=auto", "hydra/launcher=slurm", "hydra.sweeper.max_batch_size=null"],
                                 cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        deadline = time.monotonic() + 600
        while not list((cwd / "multirun").glob("*/*/.submitit")):
            assert sweep.poll() is None, (cwd / "sweep.err").read_text()[-3000:]
            time.sleep(0.2)
        sweep_dir = _sweep_dir(cwd)
        logs = {task: _job_log(sweep_dir, task, deadline) for task in (0, 1)}
        jobs = _array_tasks(sweep_dir)
        next(line for line in _follow(logs[1], deadline) if EPOCH_LINE.match(line))
        _cancel_for_good(jobs[1])
        epochs = (line for line in _follow(logs[0], deadline) if EPOCH_LINE.match(line))
        for _ in range(STAGE1_EPOCHS + 1):
            next(epochs)
        subprocess.run(["scancel", "--signal=USR2", jobs[0]], check=True, timeout=60)
        _release_when_requeued(jobs[0], deadline)
        sweep.wait(timeout=900)
        local.wait(timeout=900)
    finally:
        if sweep.poll() is None:  # the test failed: leave no job of it behind on Slurm
            arrays = {path.name.split("_")[0] for path in cwd.glob("multirun/*/*/.submitit/*_*")}
            subprocess.run(["scancel", *arrays], timeout=60)
        sweep.kill()
        local.kill()
    stderr = (cwd / "sweep.err").read_text()
    assert local.returncode == 0, (reference / "train.out").read_text()[-3000:]
    assert sweep.returncode == 1, stderr[-3000:]
    return sweep_dir, reference, stderr


def _sqlite_runs(cwd: Path) -> list:
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("facebias")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_a_preempted_job_comes_back_and_continues_its_run(preempted_sweep) -> None:
    sweep_dir, _, _ = preempted_sweep
    job = _array_tasks(sweep_dir)[0]
    assert [row[0] for row in _sacct(job, "State", duplicates=True)] == ["REQUEUED", "COMPLETED"]
    log = (sweep_dir / ".submitit" / job / f"{job}_0_log.out").read_text()
    assert "Caught signal SIGUSR2" in log
    runs = [r for r in _sqlite_runs(sweep_dir.parents[2]) if r.data.params.get("seed") == "0"]
    assert [r.info.status for r in runs] == ["FINISHED"], "the requeued job continued the same MLflow run"
    assert f"resuming run {runs[0].info.run_id} from its checkpoint" in log
    resumed = re.search(r"from its checkpoint in \S+ \((stage \d+), (\d+) epoch\(s\) done in it\)", log)
    assert resumed.group(1) == "stage 2" and int(resumed.group(2)) >= 1, f"interrupted in stage 2: {resumed.group(0)}"
    assert "error" not in runs[0].data.tags


@pytest.mark.slow
def test_the_resumed_job_trains_no_epoch_twice_and_ends_where_an_uninterrupted_run_does(preempted_sweep) -> None:
    sweep_dir, reference_dir, _ = preempted_sweep
    client = MlflowClient(f"sqlite:///{sweep_dir.parents[2] / 'mlruns' / 'mlflow.db'}")
    (run,) = [r for r in _sqlite_runs(sweep_dir.parents[2]) if r.data.params.get("seed") == "0"]
    total = 0
    for stage in (1, 2, 3):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, f"stage{stage}/loss")]
        assert sorted(steps) == list(range(len(steps))) and steps, f"stage{stage}/loss: {steps}"
        total += len(steps)
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")) == list(range(total))
    (reference,) = _sqlite_runs(reference_dir)
    finals = sorted(key for key in reference.data.metrics if key.startswith(("test/", "val/", "stage")))
    assert finals
    for key in finals:
        assert run.data.metrics[key] == pytest.approx(reference.data.metrics[key], rel=1e-4, abs=1e-6), key


@pytest.mark.slow
def test_a_job_cancelled_for_good_is_a_killed_child_named_by_the_sweep(preempted_sweep) -> None:
    sweep_dir, _, stderr = preempted_sweep
    job = _array_tasks(sweep_dir)[1]
    assert _sacct(job, "State")[0][0].startswith("CANCELLED")
    runs = _sqlite_runs(sweep_dir.parents[2])
    (parent,) = [r for r in runs if r.data.tags.get("facebias.role") == "sweep"]
    (cancelled,) = [r for r in runs if r.data.params.get("seed") == "1"]
    assert parent.info.status == "FAILED"
    named = re.compile(rf"job 1 \([^)]*seed=1[^)]*\): Slurm job {job} ended CANCELLED")
    assert named.match(parent.data.tags["facebias.failed_jobs"]), parent.data.tags["facebias.failed_jobs"]
    assert "error: 1 job(s) of the sweep failed (the others ran): job 1 (" in stderr
    assert named.search(stderr)
    assert cancelled.info.status == "KILLED"
    assert cancelled.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "found by the end of its sweep" in cancelled.data.tags["facebias.killed_reason"]


@pytest.fixture(scope="session")
def node_loss_sweep(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A one-job Slurm sweep (seed 0, resume=auto) whose job's processes are SIGKILLed on the node right after its
    first stage-2 epoch, as a node that loses them does (no USR2, no scancel: nothing the job can catch); the
    uninterrupted seed-0 run of `preempted_sweep` is its reference (the same run). Returns the sweep folder and the
    command's output."""
    cwd = tmp_path_factory.mktemp("node-loss")
    with (cwd / "sweep.out").open("w") as out:
        sweep = subprocess.Popen([sys.executable, "-m", "facebias.train", "-m", *PREEMPT_RUN, "seed=0", "resume=auto",
                                  "hydra/launcher=slurm"], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 600
        while not list((cwd / "multirun").glob("*/*/.submitit")):
            assert sweep.poll() is None, (cwd / "sweep.out").read_text()[-3000:]
            time.sleep(0.2)
        sweep_dir = _sweep_dir(cwd)
        log = _job_log(sweep_dir, 0, deadline)
        epochs = (line for line in _follow(log, deadline) if EPOCH_LINE.match(line))
        for _ in range(STAGE1_EPOCHS + 1):
            next(epochs)
        job = _array_tasks(sweep_dir)[0]
        _sigkill(_step_processes(job))
        _release_when_requeued(job, deadline)
        sweep.wait(timeout=900)
    finally:
        if sweep.poll() is None:  # the test failed: leave no job of it behind on Slurm
            subprocess.run(["scancel", *{p.name.split("_")[0] for p in cwd.glob("multirun/*/*/.submitit/*_*")}],
                           timeout=60)
        sweep.kill()
    output = (cwd / "sweep.out").read_text()
    assert sweep.returncode == 0, output[-3000:]
    return sweep_dir, output


@pytest.mark.slow
def test_a_job_killed_on_its_node_is_requeued_and_continues_its_run(node_loss_sweep) -> None:
    sweep_dir, output = node_loss_sweep
    job = _array_tasks(sweep_dir)[0]
    assert [row[0] for row in _sacct(job, "State", duplicates=True)] == ["REQUEUED", "COMPLETED"]
    assert f"job 0: Slurm job {job} was killed on its node (FAILED, signal 9): requeued (1 of at most 3 times)" \
        in output, output[-3000:]
    log = (sweep_dir / ".submitit" / job / f"{job}_0_log.out").read_text()
    (run,) = [r for r in _sqlite_runs(sweep_dir.parents[2]) if r.data.params.get("seed") == "0"]
    assert run.info.status == "FINISHED"
    assert f"resuming run {run.info.run_id} from its checkpoint" in log, "the requeued job continued the same run"
    resumed = re.search(r"from its checkpoint in \S+ \((stage \d+), (\d+) epoch\(s\) done in it\)", log)
    assert resumed.group(1) == "stage 2" and int(resumed.group(2)) >= 1, f"killed in stage 2: {resumed.group(0)}"


@pytest.mark.slow
def test_the_job_requeued_after_a_kill_trains_no_epoch_twice_and_ends_as_an_uninterrupted_run(
        node_loss_sweep, preempted_sweep) -> None:
    sweep_dir, _ = node_loss_sweep
    client = MlflowClient(f"sqlite:///{sweep_dir.parents[2] / 'mlruns' / 'mlflow.db'}")
    (run,) = [r for r in _sqlite_runs(sweep_dir.parents[2]) if r.data.params.get("seed") == "0"]
    stage_steps = [[m.step for m in client.get_metric_history(run.info.run_id, f"stage{stage}/loss")]
                   for stage in (1, 2, 3)]
    assert all(sorted(steps) == list(range(len(steps))) and steps for steps in stage_steps), stage_steps
    total = sum(map(len, stage_steps))
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")) == list(range(total))
    (reference,) = _sqlite_runs(preempted_sweep[1])
    finals = sorted(key for key in reference.data.metrics if key.startswith(("test/", "val/", "stage")))
    for key in finals:
        assert run.data.metrics[key] == pytest.approx(reference.data.metrics[key], rel=1e-4, abs=1e-6), key

