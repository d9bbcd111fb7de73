"""The README's MLflow UI walk-through, as a fresh browser meets it, on a quick grid sweep.

A quick grid sweep (`python -m facebias.train +sweep=paper_grid_quick`) writes a SQLite MLflow store; the test
starts `mlflow server` on 127.0.0.1 over that store, the way users do, and in a fresh profile of headless Chromium
(Debian's `chromium` package, driven by Playwright) follows the README: it opens the experiment (a fresh browser
shows MLflow 3's GenAI overview), switches to "Model training" (the runs table), expands the parent run
`paper_grid_quick` (its 8 child runs are listed under it), adds the five test-metric columns from the "Columns"
menu and reads each child's values, which must equal the store's; then it opens the parent run, whose description
must show the results table. The screenshots of those two views go to the test's temporary folder, or, with
FACEBIAS_UPDATE_SCREENSHOTS=1, to docs/images/ (the README shows them), so that a test run leaves the committed
ones alone. On failure a screenshot, the page HTML and the server log are kept in `test-artifacts/` at the repository
root.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from mlflow_server import SERVER_ENVIRONMENT
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ARTIFACT_DIR = REPO_ROOT / "test-artifacts"
README_SCREENSHOTS = REPO_ROOT / "docs" / "images"
"""Where the walk-through's screenshots go with FACEBIAS_UPDATE_SCREENSHOTS=1 (committed; the README shows them)."""
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason=f"{CHROMIUM} missing (Debian's `chromium` package; CI installs it)")
PARENT_NAME = "paper_grid_quick"
TEST_METRICS = ["test/mae", "test/age_bias", "test/gender_bias", "test/ethnicity_bias", "test/expression_bias"]
SERVER_START_TIMEOUT_S = 90.0
UI_WAIT_MS = 30_000
"""How long a check waits for the page to show what it expects: the count of matching runs can show before the
rows do (a clean-clone run saw the parent's link missing right after "9 matching runs"), and the machine is shared."""
UI_TIMEOUT_MS = 60_000

# Collects the rendered AG Grid rows of the runs table. A row is split over the pinned-left and the scrolling
# containers (same `row-index`), so cells are merged per index; the run's name and id come from its link.
READ_RUNS_TABLE_JS = """
() => {
  const rows = {};
  for (const row of document.querySelectorAll('[role="row"][row-index]')) {
    const index = row.getAttribute('row-index');
    const entry = rows[index] ??= {index: Number(index), cells: {}};
    for (const cell of row.querySelectorAll('[role="gridcell"][col-id]')) {
      entry.cells[cell.getAttribute('col-id')] = cell.innerText.trim();
      const link = cell.querySelector('a[href*="/runs/"]');
      if (link) { entry.href = link.getAttribute('href'); entry.name = link.innerText.trim(); }
    }
  }
  return Object.values(rows);
}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class MlflowServer:
    url: str
    log: Path


@pytest.fixture(scope="module")
def mlflow_server(quick_grid_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """`mlflow server` over the grid's SQLite store on a free 127.0.0.1 port, for the module's tests; stopped (whole
    process group) after."""
    tmp_path = tmp_path_factory.mktemp("mlflow-ui-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    store = f"sqlite:///{(quick_grid_store / 'mlruns' / 'mlflow.db').resolve()}"
    server_cwd = tmp_path / "server"
    server_cwd.mkdir()
    log = tmp_path / "mlflow-server.log"
    env = os.environ.copy()
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(SERVER_ENVIRONMENT)
    with log.open("wb") as log_file:
        # Own session, so that teardown stops uvicorn and the job runner that `mlflow server` spawns as well.
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=server_cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S:.0f} s:\n"
                            f"{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield MlflowServer(url=url, log=log)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the CLI, uvicorn, the job runner); SIGKILL what is left after 20 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, so that the group is gone once its other members are
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _sweep_runs(store_dir: Path) -> tuple[str, Run, dict[str, Run]]:
    """Experiment id, parent run and child runs (by run id) of the sweep, read from the store."""
    client = MlflowClient(f"sqlite:///{store_dir / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("facebias")
    assert experiment is not None
    parents = client.search_runs([experiment.experiment_id], "tags.`facebias.role` = 'sweep'")
    assert [run.info.run_name for run in parents] == [PARENT_NAME]
    parent = parents[0]
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(run.data.tags["facebias.experiment"].split("_")[0] for run in children) == [
        f"exp{i}" for i in range(1, 9)
    ]
    for child in children:
        assert set(TEST_METRICS) <= set(child.data.metrics), child.info.run_name
    return experiment.experiment_id, parent, {run.info.run_id: run for run in children}


def _shows(text: str, value: float) -> bool:
    """Whether a metric cell's text shows `value`, to the precision the UI printed it with."""
    try:
        shown = float(text.replace(",", ""))
    except ValueError:
        return False
    mantissa = text.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    if "e" in text.lower():
        return math.isclose(shown, value, rel_tol=10.0 ** -decimals)
    return abs(shown - value) <= 0.5 * 10.0 ** -decimals * (1 + 1e-9) + 1e-12


def _table_problems(rows: list[dict], parent: Run, children: dict[str, Run]) -> list[str]:
    """Differences between the rendered runs table and the store: parent, child names, nesting, test metrics."""
    by_id = {}
    for row in rows:
        if match := re.search(r"/runs/([0-9a-f]+)$", row.get("href", "")):
            by_id[match.group(1)] = row
    parent_row = by_id.get(parent.info.run_id)
    if parent_row is None or parent_row["name"] != PARENT_NAME:
        return [f"parent run {PARENT_NAME} ({parent.info.run_id}) not shown; rows: {rows}"]
    problems = [f"child run {run.info.run_name} ({run_id}) not shown" for run_id, run in children.items()
                if run_id not in by_id]
    for run_id, run in children.items():
        row = by_id.get(run_id)
        if row is None:
            continue
        if row["name"] != run.info.run_name:
            problems.append(f"{run_id}: shown as {row['name']!r}, stored as {run.info.run_name!r}")
        if row["index"] <= parent_row["index"]:
            problems.append(f"{run.info.run_name}: listed above its parent run")
        for key in TEST_METRICS:
            text = row["cells"].get(f"metrics.`{key}`", "<no cell>")
            if not _shows(text, run.data.metrics[key]):
                problems.append(f"{run.info.run_name} {key}: shown {text!r}, stored {run.data.metrics[key]!r}")
    return problems


def _save_evidence(page: Page, server: MlflowServer, name: str) -> list[Path]:
    ARTIFACT_DIR.mkdir(exist_ok=True)
    stem = ARTIFACT_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    saved = [stem.with_suffix(".png"), stem.with_suffix(".html"), stem.with_suffix(".server.log")]
    page.screenshot(path=saved[0], full_page=True)
    saved[1].write_text(page.content(), encoding="utf-8")
    saved[2].write_bytes(server.log.read_bytes())
    return saved


def _open_runs_table(page: Page, url: str, parent_id: str, child_ids: set[str]) -> None:
    """What a user does: open the experiment, which a fresh browser shows in MLflow 3's GenAI mode; switch to
    "Model training" (its runs table); expand the sweep's parent run; add the test-metric columns."""
    # MLflow 3's one-time tips (e.g. "Detect Issues in Your Traces" on the GenAI overview) appear once their data has
    # loaded, so at no fixed step, and cover the page until dismissed: whenever one shows, do what a user does.
    page.add_locator_handler(page.locator('[data-component-type="popover"]').get_by_role("button", name="Got it"),
                             lambda tip: tip.click())
    page.goto(url)
    parent_link = page.get_by_role("link", name=PARENT_NAME, exact=True)
    for attempt in range(2):  # a tip that shows as the button is clicked takes the click: a user clicks again
        page.get_by_role("button", name="Model training", exact=True).click()
        try:
            parent_link.wait_for(timeout=UI_TIMEOUT_MS / 2)  # the SPA has fetched the runs and rendered the table
            break
        except PlaywrightTimeoutError:
            if attempt:
                raise
    assert re.search(r"/experiments/\d+/runs", page.url), f"the experiment opened on {page.url}, not its runs"
    assert parent_id in (parent_link.get_attribute("href") or "")
    close_assistant = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close_assistant.count():  # the MLflow Assistant side panel takes the width the metric columns need
        close_assistant.first.click()

    if not page.locator(f"a[href$='/runs/{min(child_ids)}']").count():  # collapsed: click the parent's expander
        page.get_by_role("gridcell").filter(has=parent_link).get_by_role("button").first.click()
    page.wait_for_function(
        "ids => ids.every(id => document.querySelector(`a[href$='/runs/${id}']`))", arg=sorted(child_ids),
    )

    page.get_by_role("button", name="Columns", exact=True).click()
    search = page.get_by_placeholder("Search columns")
    search.wait_for()
    for key in TEST_METRICS:
        search.fill(key)
        title = page.locator("[class*='tree-title']").filter(has_text=re.compile(rf"^{re.escape(key)}$"))
        page.locator("[class*='tree-treenode']").filter(has=title).locator("[class*='tree-checkbox']").first.click()
    page.keyboard.press("Escape")
    for key in TEST_METRICS:
        page.locator(f'[role="columnheader"][col-id="metrics.`{key}`"]').wait_for()


def _open_parent(page: Page, url: str, children: dict[str, Run]) -> None:
    """The parent run's page: its description renders the results table, with each experiment's test MAE as
    stored (one run per experiment: the cell is that run's value, to 4 decimals)."""
    page.goto(url)
    table = page.locator("table").filter(has_text="Experiment").first
    table.wait_for()
    show_more = page.get_by_text("Show more", exact=True)
    if show_more.count():  # a long description is folded
        show_more.first.click()
    text = table.inner_text()
    for run in children.values():
        row = f"{run.data.tags['facebias.experiment']}"
        assert row in text, f"{row} not in the parent's description"
        assert f"{run.data.metrics['test/mae']:.4f}" in text, f"{row}: test/mae not shown as stored"


@contextlib.contextmanager
def _fresh_page(profile: Path, viewport: dict[str, int], server: MlflowServer, evidence: str) -> Iterator[Page]:
    """A page of headless Chromium with a fresh profile, as a new user's browser; on any failure the page's
    screenshot and the server's log are kept (under `evidence`) and the failure goes on."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, viewport=viewport)
        try:
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            try:
                yield page
            except BaseException:
                saved = _save_evidence(page, server, evidence)
                print(f"MLflow UI evidence kept in: {', '.join(map(str, saved))}")
                raise
        finally:
            context.close()


def _screenshot_folder(tmp_path: Path) -> Path:
    """docs/images/ when FACEBIAS_UPDATE_SCREENSHOTS=1 (the docs' pictures), else a folder of the test's own."""
    folder = README_SCREENSHOTS if os.environ.get("FACEBIAS_UPDATE_SCREENSHOTS") == "1" else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.slow
@NEEDS_CHROMIUM
def test_mlflow_ui_shows_sweep_parent_children_and_test_metrics(
    quick_grid_store: Path, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    experiment_id, parent, expected = _sweep_runs(quick_grid_store)

    screenshots = _screenshot_folder(tmp_path)
    with _fresh_page(tmp_path / "chromium-profile", {"width": 2560, "height": 1440}, mlflow_server,
                     "test_mlflow_ui") as page:
        _open_runs_table(page, f"{mlflow_server.url}/#/experiments/{experiment_id}", parent.info.run_id, set(expected))
        problems = _table_problems(page.evaluate(READ_RUNS_TABLE_JS), parent, expected)
        assert not problems, "\n".join(problems)
        page.screenshot(path=screenshots / "mlflow-sweep-runs.png")
        _open_parent(page, f"{mlflow_server.url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}", expected)
        page.screenshot(path=screenshots / "mlflow-sweep-parent.png")


SWEEP_VIEW = re.compile(r"view the sweep's runs: mlflow ui --backend-store-uri (\S+) and open (\S+)")
"""The line the sweep printed at its end: the command that starts the UI on its store, and the link to open."""
UI_DEFAULT = "http://127.0.0.1:5000"
"""Where `mlflow ui` serves; the test's server listens on a free port instead."""


def _printed_link(quick_grid_store: Path, experiment_id: str, parent_id: str) -> str:
    """The link the quick grid's sweep printed at its end, checked against the store and the parent run."""
    (line,) = [line for line in (quick_grid_store / "sweep.log").read_text().splitlines()
               if line.startswith("view the sweep's runs:")]
    match = SWEEP_VIEW.fullmatch(line)
    assert match, line
    store, link = match.groups()
    assert store == f"sqlite:///{(quick_grid_store / 'mlruns' / 'mlflow.db').resolve()}"
    assert link == (f"{UI_DEFAULT}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
                    f"&searchFilter=tags.mlflow.parentRunId%20%3D%20%27{parent_id}%27")
    return link


def _check_model_training_mode(page: Page, experiment_id: str, children: dict[str, Run]) -> None:
    """The printed link opened the sweep's runs in Model training mode: its side navigation (Runs, Models), not
    GenAI's (Overview), the search box holding the parent's filter, the parent and its runs matching."""
    navigation = page.locator("nav")
    runs = navigation.get_by_role("link", name="Runs", exact=True)
    runs.wait_for()
    assert f"/experiments/{experiment_id}/runs?workflowType=machine_learning" in (runs.get_attribute("href") or "")
    expect(navigation.get_by_role("link", name="Models", exact=True)).to_have_count(1, timeout=UI_WAIT_MS)
    expect(navigation.get_by_role("link", name="Overview"), "GenAI's navigation").to_have_count(0)
    page.get_by_text(f"{len(children) + 1} matching runs").wait_for()  # the children and the parent nesting them
    expect(page.get_by_role("link", name=PARENT_NAME, exact=True)).to_have_count(1, timeout=UI_WAIT_MS)


def _open_grouped_chart(page: Page, children: dict[str, Run]) -> None:
    """Group the runs by the `facebias.experiment` tag, switch to the chart view and show the test/mae chart: one
    bar per experiment, the mean of its runs' (seeds') values in the store (read from the chart's own data, and
    to the 2 decimals its labels show)."""
    close_assistant = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close_assistant.count():
        close_assistant.first.click()
    page.get_by_role("button", name=re.compile("^Group by")).click()
    page.get_by_placeholder("Search").last.fill("facebias.experiment")
    page.get_by_role("menuitemcheckbox", name="facebias.experiment", exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Group by: facebias.experiment").wait_for()
    page.locator("label").filter(has=page.locator('input[name="runs-view-mode"][value="CHART"]')).click()
    page.get_by_placeholder("Search metric charts").fill("test/mae")
    card = page.locator('[data-testid="experiment-view-compare-runs-card"]').filter(
        has=page.locator('h4[title="test/mae"]'))
    card.locator("svg text").first.wait_for()
    (bars,) = card.locator(".js-plotly-plot").first.evaluate(
        "plot => plot.data.map(trace => ({groups: trace.y, values: trace.x, labels: trace.text}))")
    groups: dict[str, list[float]] = {}
    for run in children.values():
        groups.setdefault(f"tag.facebias.experiment.{run.data.tags['facebias.experiment']}", []).append(
            run.data.metrics["test/mae"])
    means = {group: sum(values) / len(values) for group, values in groups.items()}
    shown = dict(zip(bars["groups"], bars["values"], strict=True))
    assert shown.keys() == means.keys(), f"the chart's groups: {sorted(shown)}"
    for group, mean in means.items():
        assert math.isclose(shown[group], mean, rel_tol=1e-9), f"{group}: {shown[group]} shown, mean {mean}"
    assert sorted(bars["labels"]) == sorted(f"{mean:.2f}" for mean in means.values())


def _check_models_tab(page: Page, experiment_id: str, children: dict[str, Run]) -> None:
    """The Models tab lists one LoggedModel per job, each READY and linked to its source run."""
    page.locator("nav").get_by_role("link", name="Models", exact=True).click()
    page.wait_for_url(re.compile(rf"/experiments/{experiment_id}/models"))
    for run_id in children:
        page.locator(f"a[href$='/runs/{run_id}']").first.wait_for()
    expect(page.get_by_role("link", name="model", exact=True)).to_have_count(len(children), timeout=UI_WAIT_MS)
    expect(page.get_by_text("Ready", exact=True)).to_have_count(len(children), timeout=UI_WAIT_MS)


@pytest.mark.slow
@NEEDS_CHROMIUM
def test_the_printed_link_opens_model_training_with_the_models_and_the_grouped_chart(
    quick_grid_store: Path, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    experiment_id, parent, expected = _sweep_runs(quick_grid_store)
    link = _printed_link(quick_grid_store, experiment_id, parent.info.run_id)
    screenshots = _screenshot_folder(tmp_path)
    with _fresh_page(tmp_path / "chromium-profile", {"width": 1600, "height": 1000}, mlflow_server,
                     "test_mlflow_ui_link") as page:
        page.add_locator_handler(page.locator('[data-component-type="popover"]').get_by_role("button", name="Got it"),
                                 lambda tip: tip.click())
        page.goto(link.replace(UI_DEFAULT, mlflow_server.url, 1))
        _check_model_training_mode(page, experiment_id, expected)
        _open_grouped_chart(page, expected)
        page.screenshot(path=screenshots / "mlflow-sweep-chart.png")
        _check_models_tab(page, experiment_id, expected)
        page.screenshot(path=screenshots / "mlflow-sweep-models.png")
