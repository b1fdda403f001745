"""The console in a real browser: Debian's headless Chromium driven by Selenium (chromedriver from
the same Debian release, so no driver is downloaded), on the embedded graph and on Neo4j.

Three walks a person takes: review a candidate and confirm it; find an entity and follow an edge to
its evidence post; feed a bad post to a worker and see its dead letter. Hostile post text is on every
page, with JavaScript enabled in the browser: a script that ran would retitle the page. Each page is
saved as a screenshot under docs/screenshots/ (the README shows them), from the embedded run.
"""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from console_world import build_config, populate
from helpers import unavailable

from pipeline.console import create_app
from pipeline.runtime import running_worker

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"



@pytest.fixture
def browser():
    if CHROMIUM is None or DRIVER is None:
        unavailable("BROWSER TESTS SKIPPED: Debian's chromium and chromium-driver are not installed (apt-get "
                    "install chromium chromium-driver; `make browser` installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--disable-gpu", "--no-first-run"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def served(graph_store, tmp_path, request):
    """The console on a free loopback port, in a thread of this process, over the test's graph; the
    config points at that graph too, so a worker started from it writes where the console reads."""
    from werkzeug.serving import make_server

    cfg = build_config(tmp_path)
    if _backend(request) == "embedded":
        cfg.graph.embedded_dir = graph_store.data_dir
    else:
        from conftest import neo4j_password

        cfg.graph.backend, cfg.graph.neo4j_password = "neo4j", neo4j_password()
        cfg.graph.neo4j_uri = request.getfixturevalue("services").services["neo4j"].address
    ids = populate(graph_store, cfg)
    server = make_server("127.0.0.1", 0, create_app(cfg, graph_store), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", cfg, ids
    server.shutdown()
    thread.join(10)


def _shot(driver, name: str, backend: str) -> None:
    if backend == "embedded":  # one set of pictures for the README
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _after(driver, css: str, timeout: float = 20.0):
    """The element ``css`` of the page a click or submit leads to, once it is there: a click returns
    before the next page loads, so reading at once could still see the old one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def _no_script_ran(driver) -> None:
    assert driver.title != "pwned" and "pwned" not in driver.title
    assert driver.execute_script("return document.querySelectorAll('script').length") == 0


def _backend(request) -> str:
    return request.node.callspec.params["graph_store"]


def test_review_a_candidate_and_confirm_it(browser, served, request):
    from selenium.webdriver.common.by import By

    url, _, ids = served
    browser.get(url + "/review")
    _no_script_ran(browser)
    _shot(browser, "review_queue", _backend(request))
    browser.find_element(By.LINK_TEXT, ids["candidate"]).click()
    _after(browser, "#confirm-form")
    _no_script_ran(browser)
    marks = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "mark.head")]
    assert "Grace" in marks  # the pair's head span is highlighted in the example posts
    assert browser.find_elements(By.CSS_SELECTOR, "img.thumb")  # the post's photo, as a thumbnail
    # the right-to-left override inside "EvilCorp" reverses that token only: "today" still follows it
    tokens = browser.find_elements(By.CSS_SELECTOR, "ol.members li:first-child .tok")
    evil = next(t for t in tokens if "Evil" in t.get_attribute("textContent"))
    today = next(t for t in tokens if t.get_attribute("textContent") == "today")
    assert today.location["x"] > evil.location["x"]
    _shot(browser, "candidate", _backend(request))
    form = browser.find_element(By.ID, "confirm-form")
    form.find_element(By.NAME, "name").send_keys("/per/org/founded_by")
    form.find_element(By.NAME, "description").send_keys("the person who founded the organization")
    form.find_element(By.TAG_NAME, "button").click()
    assert "confirmed as /per/org/founded_by" in _after(browser, ".flash.ok").text
    browser.get(url + "/review?status=confirmed")
    assert ids["candidate"] in browser.find_element(By.ID, "candidates").text


def test_open_an_entity_and_follow_an_edge_to_its_evidence(browser, served, request):
    from selenium.webdriver.common.by import By

    url, _, _ = served
    browser.get(url + "/entities")
    box = browser.find_element(By.NAME, "q")
    box.send_keys("grace")
    box.submit()
    _after(browser, "a.entity-link").click()
    _after(browser, "svg.graph")
    assert "Grace Hopper" in browser.find_element(By.TAG_NAME, "h1").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg .edge")) == 4  # 2 extracted, 1 zero-shot, 1 inferred
    assert browser.find_elements(By.CSS_SELECTOR, "svg .edge.zero-shot")
    _no_script_ran(browser)
    _shot(browser, "entity", _backend(request))
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#edges tr") if "United States Navy" in r.text)
    row.find_element(By.CSS_SELECTOR, "a.evidence-link").click()
    assert "served in the United States Navy" in _after(browser, "#evidence").text
    _no_script_ran(browser)
    _shot(browser, "edge_evidence", _backend(request))
    browser.find_element(By.CSS_SELECTOR, "a.post-link").click()
    assert "United States Navy" in _after(browser, "#post-text").text
    _no_script_ran(browser)


def test_a_bad_post_shows_up_as_a_dead_letter(browser, served, request, tmp_path):
    from selenium.webdriver.common.by import By

    url, cfg, _ = served
    browser.get(url + "/stream")
    assert browser.find_elements(By.ID, "dead-letters") == []
    stream = tmp_path / "stream.jsonl"
    good = {"id": "p-fresh", "text": "Ada Lovelace met Charles Babbage", "created_at": "2026-11-30T12:00:00Z",
            "annotations": {"entities": [], "relations": []}}
    stream.write_text(json.dumps(good) + "\n" + '{"id": "p-bad", "text": <script>document.title="pwned"</script>\n')
    cfg.source.path, cfg.extractor.kind = stream, "gold"
    cfg.worker.state_dir = tmp_path / "state"
    with running_worker(cfg) as (_, worker):
        worker.run(idle_timeout_s=1.0)
    browser.get(url + "/stream")
    table = browser.find_element(By.ID, "dead-letters").text
    assert "parse" in table and '<script>document.title="pwned"</script>' in table  # shown as text
    assert "parse: 1" in browser.find_element(By.ID, "dead-by-stage").text
    _no_script_ran(browser)
    _shot(browser, "stream", _backend(request))
    browser.get(url + "/models")
    assert browser.find_element(By.ID, "versions").text  # the shipped extractor versions
    _shot(browser, "models", _backend(request))
