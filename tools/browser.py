"""A notebook in JupyterLab, driven by Debian's chromium through playwright (the picker's browser test and screenshot).

``jupyter_lab(folder)`` starts JupyterLab on 127.0.0.1 (a port the OS picks, a random token) with its settings,
data and runtime files inside ``folder``, and stops it, with its kernels, on exit. ``chromium_page()`` gives a
headless page that may only reach 127.0.0.1. ``run_notebook(page, url, name)`` opens a notebook and runs all
its cells. As root, JupyterLab needs ``--allow-root`` and chromium ``--no-sandbox``; both are always passed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# no news or update toasts over the notebook (they would also try to reach the internet)
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False}}
# open a notebook, wait for its kernel, run all cells: through the app object (--LabApp.expose_app_in_browser),
# as JupyterLab's own UI tests (galata) do, rather than through menus and timing
RUN_NOTEBOOK_JS = """async ([path, ms]) => {
  const app = window.jupyterapp;
  const run = async () => {
    await app.restored;
    const panel = await app.commands.execute("docmanager:open", {path});
    await panel.context.ready;
    await panel.sessionContext.ready;
    await app.commands.execute("notebook:run-all-cells");
  };
  const late = new Promise((_, reject) => setTimeout(() => reject(new Error(`not run after ${ms} ms`)), ms));
  await Promise.race([run(), late]);
}"""


def chromium() -> str | None:
    """The chromium executable on PATH (Debian's package), or None."""
    return shutil.which("chromium")


def _log_tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@contextmanager
def jupyter_lab(folder: Path, timeout: float = 60) -> Iterator[str]:
    """Serve ``folder`` with JupyterLab; yield the base URL (with ``?token=``); stop the server whatever happens.

    The kernels import sdelab from this checkout (PYTHONPATH). The server runs in its own process group,
    which is sent SIGTERM (the server then shuts its kernels down), and SIGKILL if it has not exited in 15 s.
    """
    folder = Path(folder)
    jupyter = folder / ".jupyter"
    for name, settings in LAB_SETTINGS.items():
        path = jupyter / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(jupyter / "config"), "JUPYTER_DATA_DIR": str(jupyter / "data"),
           "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    token = secrets.token_hex(16)
    log_path = folder / "jupyter.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", "--port=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
               "--LabApp.expose_app_in_browser=True"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        info = jupyter / "runtime" / f"jpserver-{server.pid}.json"
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{_log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"JupyterLab not ready after {timeout} s:\n{_log_tail(log_path)}")
            if info.exists():
                try:
                    port = json.loads(info.read_text())["port"]
                    url = f"http://127.0.0.1:{port}"
                    with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                        break
                except (OSError, ValueError, KeyError):
                    pass  # the file is half written or the server not yet listening
            time.sleep(0.2)
        yield f"{url}/?token={token}"
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        except ProcessLookupError:
            pass


@contextmanager
def chromium_page(width: int = 1280, height: int = 900, scale: float = 1) -> Iterator:
    """A headless chromium page (playwright) that can reach 127.0.0.1 only; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                "http://127.0.0.1") else route.abort())
            yield page
        finally:
            browser.close()


def run_notebook(page, url: str, name: str, timeout: float = 60) -> None:
    """Open notebook ``name`` (relative to the served folder) in JupyterLab and run all its cells."""
    base, query = url.split("?", 1)
    page.goto(f"{base.rstrip('/')}/lab?{query}", timeout=timeout * 1000)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout * 1000)
    page.evaluate(RUN_NOTEBOOK_JS, [name, timeout * 1000])
