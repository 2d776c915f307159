"""An operator's view: the site's Prometheus console page, in a real headless Chromium.

The operator reaches Prometheus on the monitoring host's loopback through an SSH tunnel, as the
README says; the page must show the healthy cluster as the inventory describes it (every worker
node and broker up, the task queue consumed, no alert) and draw its graphs. The screenshot is
kept in tests/results/operator-console.png.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import PAGE_TIMEOUT, start_chromium
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def monitoring(kit_vars: dict) -> tuple[str, dict]:
    (name,) = [n for n, v in kit_vars.items() if "monitoring" in v["groups"]]
    return name, kit_vars[name]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus_url(inventory: str, monitoring: tuple[str, dict]) -> Iterator[str]:
    """Prometheus through `ssh -L` to the monitoring host, with the inventory's connection."""
    name, hv = monitoring
    host = json.loads(
        subprocess.run(
            ["ansible-inventory", "-i", inventory, "--host", name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    port = free_port()
    command = [
        "ssh",
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "BatchMode=yes",
        *host.get("ansible_ssh_common_args", "").split(),
        "-i",
        host["ansible_ssh_private_key_file"],
        "-L",
        f"127.0.0.1:{port}:{hv['prometheus_listen_address']}:{hv['prometheus_port']}",
        f"{host['ansible_user']}@{host['ansible_host']}",
    ]
    tunnel = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert tunnel.poll() is None, f"ssh -L failed: {tunnel.stderr.read()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        tunnel.terminate()
        tunnel.wait(10)


def test_console_page_shows_the_healthy_cluster_and_draws_its_graphs(
    prometheus_url: str, monitoring: tuple[str, dict], tmp_path_factory
) -> None:
    _, hv = monitoring
    browser = start_chromium(tmp_path_factory)
    try:
        browser.get(f"{prometheus_url}/consoles/celery.html")
        wait = WebDriverWait(browser, PAGE_TIMEOUT)
        # Every graph drawn (Rickshaw renders an SVG once the query answered).
        for index, graph in enumerate(hv["prometheus_console_graphs"], start=1):
            try:
                wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f"#graph{index} svg")))
            except TimeoutException:
                browser.save_screenshot(str(tmp_path_factory.mktemp("console") / "failed.png"))
                pytest.fail(
                    f"graph {graph['title']!r} not drawn in {PAGE_TIMEOUT} s; the page says: "
                    f"{browser.find_element(By.ID, f'graph{index}').text!r}; "
                    f"console: {browser.get_log('browser')}"
                )
        browser.set_window_size(1280, 2000)  # the whole page in the picture
        time.sleep(1)  # let the last lines and legends settle
        RESULTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(RESULTS / "operator-console.png"))

        def cell(name: str) -> str:
            return browser.find_element(By.ID, name).text.strip()

        assert cell("alerts-firing") == "0"
        for group, count in hv["prometheus_console_worker_groups"].items():
            assert cell(f"workers-{group}") == f"{count} / {count}"
        brokers = hv["prometheus_console_brokers"]
        assert cell("brokers-up") == f"{brokers} / {brokers}"
        assert cell("broker-alarms") == "0"
        workers = sum(hv["prometheus_console_worker_groups"].values())
        # The task queue: nothing waiting, every worker node consuming it.
        ready, _unacked, consumers = cell(f"queue-{hv['kitapp_default_queue']}").split(" / ")
        assert (ready, consumers) == ("0", str(workers))
        assert " of 256MiB" in cell("redis-memory")
    finally:
        browser.quit()
