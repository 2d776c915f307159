"""Debian's Chromium, headless, driven by Debian's chromedriver (packages `chromium` and
`chromium-driver`, installed by `make host`); nothing is downloaded at run time (Selenium Manager
is never used: both paths are given explicitly). Background networking is off, so the only
traffic is to the pages a test opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Straight to the cluster, whatever proxy the environment names.
    "--no-proxy-server",
    "--window-size=1280,900",
]
PAGE_TIMEOUT = 30


def start_chromium(
    tmp_path_factory: pytest.TempPathFactory, extra_args: list[str] | None = None
) -> webdriver.Chrome:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "(`make host` does, via vagrant/host-setup.sh)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS + (extra_args or []):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    service = Service(
        executable_path=str(CHROMEDRIVER),
        log_output=str(tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"),
    )
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:
        pytest.fail(f"could not start headless Chromium: {exc.msg}", pytrace=False)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    return driver
