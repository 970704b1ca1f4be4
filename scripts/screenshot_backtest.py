"""Reproduce the screenshots of docs/backtests.md: the runs table with the per-horizon metric
columns (docs/images/backtest-runs-table.png) and the run's chart of ``rmse_by_horizon``
against the step, which is the horizon (docs/images/backtest-rmse-by-horizon.png).

Usage: uv run --with playwright python scripts/screenshot_backtest.py

It needs a Chromium (Debian: ``apt-get install chromium``; another one with
``--chromium PATH``), which playwright drives as it is: no browser is downloaded. In a new
temporary folder it logs two backtests of the embedded sample (``pokewatch train --horizon 7
--windows 4 --step 7``, window sizes 3 and 7), starts ``mlflow server`` on that folder's
store, bound to 127.0.0.1 on a free port, takes both screenshots and stops the server.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
BACKTEST = ["--horizon", "7", "--windows", "4", "--step", "7"]
RUNS = {"ma3": [], "ma7": ["-p", "window_size=7"]}
COLUMNS = ["rmse", *(f"rmse_h{h}" for h in range(1, 8)), "rmse_by_horizon"]
HIDDEN = ["Dataset", "Source", "Models"]  # default columns hidden to make room


def quiet_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    return env


def train(folder: Path) -> dict[str, str]:
    """The two backtests, logged to ``folder/mlflow.db``: run name -> run id."""
    ids = {}
    for name, extra in RUNS.items():
        command = [sys.executable, "-m", "pokewatch_core", "train", *BACKTEST, *extra]
        done = subprocess.run(
            [*command, "--run-name", name],
            cwd=folder,
            env=quiet_environment(),
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"^Run ([0-9a-f]{32}) logged", done.stdout, re.M)
        assert found, done.stdout
        ids[name] = found[1]
    return ids


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}")
        try:
            with opener.open(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"mlflow server did not answer at {url} within {timeout} s")


def close_assistant(page: Any) -> None:
    """MLflow 3's assistant panel opens beside every page: closed, for a wider view."""
    button = page.get_by_role("button", name="Close", exact=True)
    if button.count():
        button.first.click()
        page.wait_for_timeout(500)


def tick(page: Any, name: str, checked: bool) -> None:
    """Tick (or untick) column ``name`` in the open Columns menu (a tree of checkboxes)."""
    exactly = re.compile(rf"^\s*{re.escape(name)}\s*$")  # a search highlights in the title
    node = page.locator('div[class*="tree-treenode"]').filter(has_text=exactly).first
    node.wait_for(timeout=30_000)
    if ("tree-treenode-checkbox-checked" in (node.get_attribute("class") or "")) != checked:
        node.locator('span[class*="tree-checkbox"]').first.click()
        page.wait_for_timeout(300)


def runs_table(page: Any, url: str, out: Path) -> None:
    page.goto(f"{url}/#/experiments/1?workflowType=machine_learning")
    page.get_by_text("matching run").wait_for(timeout=60_000)
    close_assistant(page)
    page.get_by_role("button", name="Toggle sidebar").click()
    page.get_by_role("button", name="Columns", exact=True).click()
    for name in HIDDEN:
        tick(page, name, False)
    page.get_by_placeholder("Search columns").fill("rmse")
    for name in COLUMNS:
        tick(page, name, True)
    page.keyboard.press("Escape")
    page.mouse.move(0, 800)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1600, "height": 340})


def horizon_chart(page: Any, url: str, run_id: str, out: Path) -> None:
    page.goto(f"{url}/#/experiments/1/runs/{run_id}/model-metrics?workflowType=machine_learning")
    search = page.get_by_placeholder("Search metric charts")
    search.wait_for(timeout=60_000)
    close_assistant(page)
    search.fill("rmse_by_horizon")
    card = page.locator(
        '[data-testid="experiment-view-compare-runs-card"]',
        has=page.locator('h4[title="rmse_by_horizon"]'),
    )
    card.locator('[data-component-id="fullscreen_button_chartcard"]').click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(timeout=30_000)
    page.mouse.move(0, 0)  # no hover: plotly's toolbar stays hidden
    page.wait_for_timeout(2500)
    content = dialog.locator('[class*="modal-content"]')  # the modal, not the page behind it
    (content.first if content.count() else dialog).screenshot(path=str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the PNGs go")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="pokewatch-shots-") as tmp:
        folder = Path(tmp)
        ids = train(folder)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"sqlite:///{folder / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            cwd=folder, env=quiet_environment(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_until_up(url, server)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                runs_table(page, url, args.out / "backtest-runs-table.png")
                horizon_chart(page, url, ids["ma3"], args.out / "backtest-rmse-by-horizon.png")
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    print(
        f"wrote {args.out / 'backtest-runs-table.png'}, {args.out / 'backtest-rmse-by-horizon.png'}"
    )


if __name__ == "__main__":
    main()
