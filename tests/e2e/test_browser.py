"""A user drives the web page in a real headless Chromium, through nginx, gunicorn and a worker.

The browser is Debian's Chromium (tests/e2e/chromium.py); the only traffic is to the cluster's
web front end.

The page is loaded over HTTPS when the site serves it. Chromium is told to accept exactly the
public key of the front end's certificate, read from a TLS connection that first verified it
against the CA that issued it (the kit's CA on the Vagrant cluster); nothing else is trusted.

The download source is the front end itself (its plain-HTTP `/ping`, a 4-byte "pong", which
nginx keeps on HTTP for health checks): workers may only fetch from private addresses listed in
KITAPP_DOWNLOAD_ALLOWED_NETWORKS, which the deployment must set to include the web host's
cluster address.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from chromium import PAGE_TIMEOUT, start_chromium
from cluster_runs import front_end_plain_url
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

FINAL_STATES = ("SUCCESS", "FAILURE")
KNOWN_STATES = {"PENDING", "STARTED", "RETRY", *FINAL_STATES}
JOB_TIMEOUT = 120


def verified_spki_hash(url: str, ca_bundle: str) -> str:
    """Base64 SHA-256 of the public key of the certificate `url` serves, once that certificate
    has been verified against `ca_bundle` for the URL's host (Chromium's SPKI pin format)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=ca_bundle)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der, f"{url} sent no certificate"
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="session")
def browser(
    tmp_path_factory: pytest.TempPathFactory, web_url: str, web_ca_bundle: str | None
) -> Iterator[webdriver.Chrome]:
    extra = []
    if web_url.startswith("https://") and web_ca_bundle:
        spki = verified_spki_hash(web_url, web_ca_bundle)
        extra.append(f"--ignore-certificate-errors-spki-list={spki}")
    driver = start_chromium(tmp_path_factory, extra)
    try:
        yield driver
    finally:
        driver.quit()


def recent_job_ids(web_url: str) -> set[str]:
    """Every job the page could already be showing (it lists the newest 20)."""
    reply = requests.get(f"{web_url}/api/jobs", params={"limit": 100}, timeout=10)
    assert reply.status_code == 200, reply.text
    return {job["id"] for job in reply.json()["jobs"]}


def jobs_table(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.CSS_SELECTOR, "table#jobs").text


def submit_url(browser: webdriver.Chrome, web_url: str, url: str) -> WebElement:
    """Opens the page, submits `url` through the form; returns the new job's row."""
    browser.get(f"{web_url}/")
    wait = WebDriverWait(browser, PAGE_TIMEOUT)
    field = wait.until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, "form#download-form input#url"))
    )
    known = recent_job_ids(web_url)
    field.clear()
    field.send_keys(url)
    browser.find_element(By.CSS_SELECTOR, "form#download-form button#submit").click()

    def new_row(driver: webdriver.Chrome) -> WebElement | bool:
        for row in driver.find_elements(By.CSS_SELECTOR, "table#jobs tbody tr[data-id]"):
            if row.get_attribute("data-id") not in known:
                return row
        return False

    try:
        return wait.until(new_row)
    except TimeoutException:
        message = browser.find_element(By.ID, "message").text
        pytest.fail(
            f"no row for the submitted job after {PAGE_TIMEOUT}s; "
            f"#message: {message!r}; table:\n{jobs_table(browser)}"
        )


def wait_for_final_state(browser: webdriver.Chrome, row: WebElement) -> list[str]:
    """Watches the row's td.state until SUCCESS or FAILURE; returns the states seen, in order."""
    seen: list[str] = []

    def final(_driver: webdriver.Chrome) -> bool:
        state = row.find_element(By.CSS_SELECTOR, "td.state").text.strip()
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        return state in FINAL_STATES

    try:
        WebDriverWait(browser, JOB_TIMEOUT, poll_frequency=0.2).until(final)
    except TimeoutException:
        pytest.fail(
            f"job {row.get_attribute('data-id')} not finished after {JOB_TIMEOUT}s "
            f"(states seen: {seen}); table:\n{jobs_table(browser)}"
        )
    return seen


def test_user_submits_a_download_and_watches_it_finish_in_the_browser(
    browser, web_url, kit_vars, web_host_name
) -> None:
    source = f"{front_end_plain_url(kit_vars[web_host_name])}/ping"
    expected = requests.get(source, timeout=10)
    assert expected.status_code == 200, expected.text

    row = submit_url(browser, web_url, source)
    assert browser.current_url.startswith(web_url)  # the page came over HTTPS when served so
    assert row.find_element(By.CSS_SELECTOR, "td.task").text == "download"
    seen = wait_for_final_state(browser, row)

    details = row.find_element(By.CSS_SELECTOR, "td.details").text
    assert seen[-1] == "SUCCESS", f"states seen: {seen}; details: {details!r}"
    assert set(seen) <= KNOWN_STATES, seen
    # The worker fetched exactly what the front end serves.
    body = expected.content
    assert details == f"{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}"
    assert row.get_attribute("data-state") == "SUCCESS"
    assert browser.find_element(By.ID, "message").text == ""


def test_non_http_url_submitted_in_the_browser_fails_on_the_worker(browser, web_url) -> None:
    # The API only checks the argument's type; the worker refuses any scheme but http(s).
    row = submit_url(browser, web_url, "file:///etc/passwd")
    seen = wait_for_final_state(browser, row)

    details = row.find_element(By.CSS_SELECTOR, "td.details").text
    assert seen[-1] == "FAILURE", f"states seen: {seen}; details: {details!r}"
    assert details == "DownloadError: URL scheme 'file' is not allowed; use http or https"
    assert "root:" not in jobs_table(browser)
