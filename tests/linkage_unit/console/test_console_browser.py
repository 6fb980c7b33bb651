"""The console in a real browser: Debian's headless Chromium, driven by Selenium, on loopback.

Signs in as the operator and as each party, walks every view, checks that a party cannot
open another party's or the operator's pages, watches a run's progress live, and joins a
release to a key map in the browser, comparing the file with what `pacelink results`
writes. Screenshots of every view are kept under ``out/test-artifacts/console``.

Chromium and ChromeDriver come from Debian's packages (``make test`` installs them); the
tests fail, not skip, without them: a browser test that did not run has not passed.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait
from typer.testing import CliRunner

from encoder.cli import app, load_plugins
from encoder.schema import load_schema
from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit
from linkage_unit.jobs.worker import Worker
from tests.linkage_unit.console.conftest import PARTNERS, ConsoleProject, routes

CHROMIUM = Path(os.environ.get("PACELINK_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PACELINK_CHROMEDRIVER", "/usr/bin/chromedriver"))
ARTIFACTS = Path(os.environ.get("PACELINK_TEST_ARTIFACTS", "out/test-artifacts")) / "console"


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    """Headless Chromium at a laptop's window size."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing: install Debian's chromium and "
                    "chromium-driver (`make test` does)")  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1366,900", "--disable-gpu"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})  # fmt: skip
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: WebDriver, check: Callable[[WebDriver], object], seconds: float = 15) -> None:
    WebDriverWait(driver, seconds, poll_frequency=0.1).until(check)


def _sign_in(driver: WebDriver, url: str, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(url + "/console/")
    assert "/console/login" in driver.current_url
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    _wait(driver, lambda d: "/console/login" not in d.current_url)


def _shot(driver: WebDriver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _no_errors(driver: WebDriver) -> None:
    """Nothing on the page failed: no script error, no blocked or missing resource."""
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_operator_walks_every_view(browser: WebDriver, console_project: ConsoleProject) -> None:
    made = console_project
    _sign_in(browser, made.url, made.unit.admin_token)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Projects"
    pages = [
        p
        for p, info in routes(made).items()
        if info["who"] in ("admin", "any") and not p.endswith(("/status", "/verify"))
    ]
    pages += [f"/console/projects/{made.project}/runs/{made.runs[0]}",
              f"/console/projects/{made.project}/parties/council"]  # fmt: skip
    for k, path in enumerate(pages):
        started = time.perf_counter()
        browser.get(made.url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text, path
        assert "Not yours" not in browser.page_source, path
        assert time.perf_counter() - started < 10
        _shot(browser, f"operator-{k:02d}-{path.strip('/').replace('/', '_')[:60]}")
        _no_errors(browser)
    # The projects list links to the project, its tabs to every operator view.
    browser.get(made.url + "/console/")
    browser.find_element(By.LINK_TEXT, "Console project").click()
    for tab in ("Uploads", "Runs", "Releases", "Overview"):
        browser.find_element(By.LINK_TEXT, tab).click()
        current = browser.find_element(By.CSS_SELECTOR, "nav.tabs [aria-current=page]")
        assert current.text == tab
    # The run page's charts are images with words for screen readers.
    browser.get(f"{made.url}/console/projects/{made.project}/runs/{made.runs[0]}")
    labels = [
        s.get_attribute("aria-label")
        for s in browser.find_elements(By.CSS_SELECTOR, "svg[role=img]")
    ]
    assert len(labels) == 3 and all(labels)
    # The audit log verifies again on request.
    browser.get(made.url + "/console/audit")
    browser.find_element(By.ID, "verify-now").click()
    _wait(browser, lambda d: "checked" in d.find_element(By.ID, "verify-result").text)
    assert browser.find_element(By.ID, "verify-result").text.startswith("Intact")
    _no_errors(browser)


def test_keyboard_reaches_the_content_first(browser: WebDriver,
                                            console_project: ConsoleProject) -> None:  # fmt: skip
    made = console_project
    _sign_in(browser, made.url, made.unit.admin_token)
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.text == "Skip to content"
    focused.send_keys(Keys.ENTER)
    assert browser.current_url.endswith("#main")
    # Every form control has a label.
    browser.get(made.url + "/console/login")
    for control in browser.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select"):
        control_id = control.get_attribute("id")
        assert browser.find_elements(By.CSS_SELECTOR, f"label[for='{control_id}']")


def test_each_party_sees_its_own_pages_only(browser: WebDriver,
                                           console_project: ConsoleProject) -> None:  # fmt: skip
    made = console_project
    base = f"{made.url}/console/projects/{made.project}"
    for name in PARTNERS:
        _sign_in(browser, made.url, made.tokens[name])
        assert browser.current_url == f"{base}/parties/{name}"
        assert name in browser.find_element(By.TAG_NAME, "h1").text
        _shot(browser, f"party-{name}")
        grants = browser.find_element(By.ID, "grants").text
        if name == "council":
            assert "overlap counts" in grants and "linkage IDs" not in grants
            assert not browser.find_elements(By.ID, "join-form")
        else:
            assert "linkage IDs" in grants and browser.find_elements(By.ID, "join-form")
        browser.find_element(By.ID, "show-counts").click()
        assert browser.find_element(By.TAG_NAME, "h1").text == "Overlap counts"
        _shot(browser, f"party-{name}-counts")
        _no_errors(browser)
        # Not another party's page, not the operator's, not another project's.
        for other in PARTNERS:
            if other != name:
                browser.get(f"{base}/parties/{other}")
                assert browser.find_element(By.TAG_NAME, "h1").text == "Not yours to see"
        for path in (base, f"{base}/runs", f"{made.url}/console/audit",
                     f"{made.url}/console/projects/{made.other_project}/parties/left"):  # fmt: skip
            browser.get(path)
            assert browser.find_element(By.TAG_NAME, "h1").text == "Not yours to see", path
        assert "Audit log" not in browser.find_element(By.TAG_NAME, "header").text
        browser.get_log("browser")  # the 403s are expected: clear them
    _shot(browser, "party-refused")
    browser.find_element(By.CSS_SELECTOR, ".signout button").click()
    _wait(browser, lambda d: "/console/login" in d.current_url)
    browser.get(f"{base}/parties/council")
    assert "/console/login" in browser.current_url


def _cli_results(made: ConsoleProject, name: str, keys: Path, upload: str, release: str,
                 out: Path) -> bytes:  # fmt: skip
    token = out.parent / f"{name}.token"
    token.write_text(made.tokens[name])
    token.chmod(0o600)
    load_plugins()
    result = CliRunner().invoke(app, [
        "results", "--unit", made.url, "--project", made.project, "--token-file", str(token),
        "--keys", str(keys), "--upload", upload, "--release", release, "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def test_join_in_the_browser_writes_what_the_cli_writes(
    browser: WebDriver, console_project: ConsoleProject, downloads: Path, tmp_path: Path
) -> None:
    made = console_project
    name = "skills_agency"
    _sign_in(browser, made.url, made.tokens[name])
    folder = made.folders[name]
    # The key map as a schema with decoys makes it: decoy rows have an empty local ID. (The
    # unit cannot tell decoys apart, so its answer has their rows; both joins drop them.)
    decoyed = tmp_path / "decoyed.keys.csv"
    lines = (folder / f"{name}.keys.csv").read_text().splitlines(keepends=True)
    for k in (1, 9, len(lines) - 1):
        lines[k] = lines[k].split(",", 1)[0] + ',""\n'
    decoyed.write_text("".join(lines))
    cases = [
        (folder / f"{name}.keys.csv", made.uploads[name][0], "mapping", "mapping.csv"),
        (folder / f"{name}.keys.csv", made.uploads[name][0], "flags:benefits_dept",
         "flags-benefits_dept.csv"),
        (folder / f"{name}-delta.keys.csv", made.uploads[name][1], "mapping", "mapping.csv"),
        (decoyed, made.uploads[name][0], "mapping", "mapping.csv"),
    ]  # fmt: skip
    for k, (keys, upload, release, filename) in enumerate(cases):
        for old in downloads.iterdir():
            old.unlink()
        browser.refresh()
        browser.find_element(By.ID, "join-keys").send_keys(str(keys))
        # Choosing the key map selects the upload with as many records, where only one has.
        _wait(browser, lambda d, u=upload: Select(d.find_element(By.ID, "join-upload"))
              .first_selected_option.get_attribute("value") == u)  # fmt: skip
        Select(browser.find_element(By.ID, "join-release")).select_by_value(release)
        browser.find_element(By.ID, "join-download").click()
        target = downloads / filename
        _wait(browser, lambda d, t=target: t.exists() and t.stat().st_size > 0)
        _wait(browser, lambda d: "Wrote" in d.find_element(By.ID, "join-status").text)
        time.sleep(0.2)  # Chromium renames the finished download into place
        expected = _cli_results(made, name, keys, upload, release, tmp_path / f"cli-{k}.csv")
        assert target.read_bytes() == expected, release
        assert b"'=HYPERLINK(1)" in expected or k > 0 or b"HYPERLINK" not in expected
        _shot(browser, f"party-join-{k}")
    # The first key map has the tricky IDs: quoted, escaped and joined like the CLI's.
    first = (tmp_path / "cli-0.csv").read_text()
    assert '"a,b"' in first and '"he said ""hi"""' in first and "'=HYPERLINK(1)" in first
    # Without its three decoy rows, the same mapping.
    with_decoys = (tmp_path / "cli-3.csv").read_text().splitlines()
    assert len(with_decoys) == len(first.splitlines()) - 3
    assert not [line for line in with_decoys if line.startswith(",")]
    # A key map that is not one: refused in the page, nothing downloaded.
    for old in downloads.iterdir():
        old.unlink()
    wrong = tmp_path / "not-a-key-map.csv"
    shutil.copy(folder / f"{name}.csv", wrong)
    browser.refresh()
    browser.find_element(By.ID, "join-keys").send_keys(str(wrong))
    browser.find_element(By.ID, "join-download").click()
    _wait(browser, lambda d: "Nothing was written" in d.find_element(By.ID, "join-status").text)
    assert "not a key map" in browser.find_element(By.ID, "join-status").text
    assert not list(downloads.iterdir())


def test_run_progress_is_live(browser: WebDriver, console_project: ConsoleProject,
                              tmp_path: Path) -> None:  # fmt: skip
    """A queued run's page follows it to the end without a reload by hand, then shows charts."""
    made = console_project
    with EmbeddedUnit(tmp_path / "unit", worker=False, poll_seconds=0.05) as unit:
        schema = load_schema("pace-default").raw
        with UnitClient(unit.url, unit.admin_token) as admin:
            created = admin.create_project({"name": "Live", "purpose": "watching a run",
                                            "schema": schema, "parties": ["a", "b"]})  # fmt: skip
            project = created["project_id"]
            for party, partner in zip(("a", "b"), ("benefits_dept", "council"), strict=True):
                with UnitClient(unit.url, created["parties"][party]) as client:
                    client.upload(project, made.folders[partner] / f"{partner}.plk")
            run = admin.start_run(project)
        _sign_in(browser, unit.url, unit.admin_token)
        browser.get(f"{unit.url}/console/projects/{project}/runs/{run['id']}")
        state = browser.find_element(By.CSS_SELECTOR, "#run-state [data-field=status]")
        assert state.text == "queued"
        assert browser.find_elements(By.CSS_SELECTOR, "#run-state progress")
        _shot(browser, "run-queued")
        stop = threading.Event()
        worker = threading.Thread(target=Worker(unit.settings, name="late").serve, args=(stop,),
                                  daemon=True)  # fmt: skip
        worker.start()
        try:
            _wait(browser, lambda d: d.find_elements(By.ID, "chart-histogram"), seconds=60)
        finally:
            stop.set()
            worker.join(timeout=30)
        assert browser.find_element(By.CSS_SELECTOR, "#run-state [data-field=status]").text == (
            "done"
        )
        _shot(browser, "run-done-live")
        _no_errors(browser)
