"""tools/app.py in a real headless browser (Debian's Chromium driven by selenium).

The test starts ``tools/app.py`` on a free local port with the tiny model and a checkpoint it writes, opens the
page, picks the example (image + class names) or uploads an image and types class names, sets the threshold,
presses Detect and waits. The expected boxes are the Predictor's, computed here with the same config and
weights: the table must list them and the drawn picture must be the one ``utils/visualizer`` draws; the JSON
link must serve them; every request the page makes must go to the local server (no CDN, fonts or analytics).

The screenshot of the page goes to the test's temporary folder. With ``FIBER_APP_DEMO_DIR=OUTPUT/demo`` (after
``python -m maskrcnn_benchmark.demo``) the app runs ``--demo`` on that trained model instead and the screenshot
refreshes ``docs/images/app.png``, the picture the README shows.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _tool_helpers import REPO, TINY, tool_env

DEMO_DIR = os.environ.get("FIBER_APP_DEMO_DIR")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1300")
CLASSES = "red square, blue circle, green triangle"


def _browser_binaries():
    """(chromium, chromedriver) paths, or skip saying how to install them."""
    pytest.importorskip("selenium", reason="the browser test needs selenium (pip install -e '.[test]')")
    pytest.importorskip("gradio", reason='the web demo needs Gradio: pip install -e ".[app]"')
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no Chromium / chromedriver on this machine: apt-get install chromium chromium-driver")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(process, url, log, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tools/app.py exited with {process.returncode}:\n{Path(log).read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"tools/app.py did not serve {url} in {timeout} s:\n{Path(log).read_text()[-3000:]}")


def _model_files(root, tokenizer_dir):
    """(app arguments, cfg, weight, image, classes): the demo model, or the tiny one with a random checkpoint."""
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.data.synthetic import SHAPE_CLASSES, draw_scene

    if DEMO_DIR:
        sys.path.insert(0, str(REPO / "tools"))
        import app as app_tool

        args = app_tool.demo_arguments(app_tool.build_parser().parse_args(["--demo", "--demo-dir", DEMO_DIR]))
        return (["--demo", "--demo-dir", DEMO_DIR], load_config(args.config_file), args.weight, args.examples[0],
                app_tool.DEMO_CLASSES)
    from maskrcnn_benchmark.modeling.detector import build_detection_model
    from maskrcnn_benchmark.utils.atomic_io import atomic_torch_save

    opts = ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", str(tokenizer_dir), "MODEL.ATSS.INFERENCE_TH", "0.0"]
    cfg = load_config(str(TINY), opts)
    torch.manual_seed(0)
    model = build_detection_model(cfg)
    with torch.no_grad():  # scores spread over (0, 1): the threshold then cuts between clearly different scores
        model.rpn.head.bias0.zero_()
        torch.nn.init.normal_(model.rpn.head.dot_product_projection_text.weight, std=0.5)
    weight = str(root / "tiny.pth")
    atomic_torch_save({"model": model.state_dict()}, weight)
    image, _ = draw_scene(np.random.default_rng(11), SHAPE_CLASSES[:3], 3, size=(200, 160))
    image.save(root / "scene.png")
    return (["--config-file", str(TINY), "--weight", weight, "--examples", str(root / "scene.png"), "--classes",
             CLASSES, *opts], cfg, weight, str(root / "scene.png"), CLASSES)


@pytest.fixture(scope="module")
def app(tmp_path_factory, bpe_tokenizer_dir):
    """tools/app.py serving on a free port of 127.0.0.1, and what the test expects of it."""
    chromium, driver = _browser_binaries()
    root = tmp_path_factory.mktemp("app")
    arguments, cfg, weight, image, classes = _model_files(root, bpe_tokenizer_dir)
    port = _free_port()
    log = root / "app.log"
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, str(REPO / "tools" / "app.py"), "--port", str(port), *arguments],
                                   cwd=REPO, env=tool_env(threads=2), stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(process, url + "/", log)
        yield SimpleNamespace(url=url, port=port, cfg=cfg, weight=weight, image=image, classes=classes,
                              root=root, log=log, chromium=chromium, driver=driver)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser(app):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={tempfile.mkdtemp(dir=app.root)}",):
        options.add_argument(flag)
    options.binary_location = app.chromium
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(app.driver), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _expected(app, classes, threshold):
    """What the page should show: the Predictor's detections with the app's config and weights."""
    from maskrcnn_benchmark.engine.predictor import Predictor

    predictor = Predictor(app.cfg, weight=app.weight, device="cpu", batch_size=1)
    return predictor.predict(app.image, [name.strip() for name in classes.split(",")], threshold=threshold)


def _threshold_for_a_few_boxes(app, classes, most=10):
    """The lowest 2-decimal threshold that keeps 2..most detections (all rows fit the table's view), with no
    score within 5e-4 of it (the page's process may differ from this one in the last float bits)."""
    scores = _expected(app, classes, 0.0).scores.tolist()
    for step in range(1, 100):
        threshold = step / 100
        kept = sum(score >= threshold for score in scores)
        if 2 <= kept <= most and all(abs(score - threshold) > 5e-4 for score in scores):
            return threshold
    pytest.fail(f"no threshold keeps 2..{most} of the scores {scores[:20]}")


def _open(browser, app):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(app.url)
    WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#detect"))


def _wait_for_input_image(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image img"))


def _type(browser, selector, text):
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.CSS_SELECTOR, selector)
    field.clear()
    field.send_keys(text)


def _submit_and_wait(browser, app, expect="detection"):
    """Press Detect and wait for a new status line containing ``expect``; returns it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    previous = browser.find_element(By.CSS_SELECTOR, "#status").text
    browser.find_element(By.CSS_SELECTOR, "#detect").click()
    try:
        WebDriverWait(browser, 300).until(
            lambda d: (text := d.find_element(By.CSS_SELECTOR, "#status").text) != previous and expect in text)
    except TimeoutException as e:
        browser.save_screenshot(str(app.root / "timeout.png"))
        status = browser.find_element(By.CSS_SELECTOR, "#status").text
        raise AssertionError(f"no status with {expect!r} after Detect (status {status!r}, screenshot "
                             f"{app.root / 'timeout.png'}); app log:\n{app.log.read_text()[-3000:]}") from e
    time.sleep(1)  # let the table and the picture render
    return browser.find_element(By.CSS_SELECTOR, "#status").text


def _table(browser):
    """The detections table as a list of rows of cell texts (the virtual rows the page rendered)."""
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('#table [role=gridcell]')).map("
        "c => [Number(c.dataset.row), Number(c.dataset.col), c.innerText.trim()])")
    rows = {}
    for row, col, text in cells:
        rows.setdefault(row, {})[col] = text
    return [[rows[r][c] for c in sorted(rows[r])] for r in sorted(rows)]


def _fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _assert_rows_are_the_detections(rows, expected):
    assert len(rows) == len(expected) > 0
    free = list(range(len(expected)))
    for row in rows:
        index, name, label, score, *box = row
        match = next((j for j in free if expected.names[j] == name and int(expected.labels[j]) == int(label)
                      and abs(float(expected.scores[j]) - float(score)) <= 2e-3
                      and np.allclose(expected.boxes[j].numpy(), [float(v) for v in box], atol=0.2)), None)
        assert match is not None, f"table row {row} is none of the expected detections"
        free.remove(match)
    assert [int(row[0]) for row in rows] == list(range(1, len(rows) + 1))


def test_page_detects_the_example_and_an_upload(app, browser):
    from PIL import Image
    from selenium.webdriver.common.by import By

    from maskrcnn_benchmark.utils.visualizer import draw_detections

    threshold = _threshold_for_a_few_boxes(app, app.classes)
    expected = _expected(app, app.classes, threshold)
    _open(browser, app)
    # 1. the example row fills in the image and the class names
    browser.find_element(By.CSS_SELECTOR, "[data-testid='dataset-cell-0-0']").click()
    _wait_for_input_image(browser)
    _type(browser, "#threshold input[type=number]", str(threshold))
    status = _submit_and_wait(browser, app)
    assert status.startswith(f"{len(expected)} detection") and f">= {threshold:.2f}" in status
    _assert_rows_are_the_detections(_table(browser), expected)
    src = browser.find_element(By.CSS_SELECTOR, "#output-image img").get_attribute("src")
    shown = np.asarray(Image.open(BytesIO(_fetch(src))).convert("RGB")).astype(int)
    drawn = np.asarray(draw_detections(Image.open(app.image).convert("RGB"), expected)).astype(int)
    assert shown.shape == drawn.shape
    assert (np.abs(shown - drawn).max(axis=-1) == 0).mean() > 0.99  # boxes, tags and colours as drawn here
    record = json.loads(_fetch(browser.find_element(By.CSS_SELECTOR, "#json a").get_attribute("href")))
    assert record["threshold"] == pytest.approx(threshold) and len(record["detections"]) == len(expected)
    browser.save_screenshot(str(app.root / "app.png"))
    if DEMO_DIR:
        shutil.copyfile(app.root / "app.png", REPO / "docs" / "images" / "app.png")
    # 2. an uploaded file and typed class names (two of the three classes)
    _open(browser, app)
    browser.find_element(By.CSS_SELECTOR, "#input-image input[type=file]").send_keys(app.image)
    _wait_for_input_image(browser)
    classes = ", ".join(app.classes.split(", ")[:2])
    _type(browser, "#classes textarea", classes)
    threshold = _threshold_for_a_few_boxes(app, classes)
    _type(browser, "#threshold input[type=number]", str(threshold))
    status = _submit_and_wait(browser, app)
    expected = _expected(app, classes, threshold)
    assert status.startswith(f"{len(expected)} detection") and set(expected.names) <= set(classes.split(", "))
    _assert_rows_are_the_detections(_table(browser), expected)


def test_page_says_what_is_wrong(app, browser):
    from selenium.webdriver.common.by import By

    _open(browser, app)
    browser.find_element(By.CSS_SELECTOR, "#input-image input[type=file]").send_keys(app.image)
    _wait_for_input_image(browser)
    _type(browser, "#classes textarea", " , ")
    assert "Error: the class list is empty" in _submit_and_wait(browser, app, expect="Error")
    browser.find_element(By.XPATH, "//*[@id='mode']//label[contains(., 'caption')]").click()
    assert "Error: the caption is empty" in _submit_and_wait(browser, app, expect="caption is empty")
    _type(browser, "#caption textarea", "x," * 200)
    assert "more than MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN" in _submit_and_wait(browser, app, expect="MAX_QUERY_LEN")


def test_page_makes_no_request_beyond_the_local_server(app, browser):
    _open(browser, app)
    time.sleep(2)
    urls = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            url = message["params"].get("request", {}).get("url") or message["params"].get("url", "")
            if url.split(":", 1)[0] in ("http", "https", "ws", "wss"):
                urls.add(url)
    assert urls, "the performance log recorded no request"
    local = (f"http://127.0.0.1:{app.port}", f"ws://127.0.0.1:{app.port}")
    assert [u for u in urls if not u.startswith(local)] == []


def test_server_listens_on_localhost_only(app):
    table = Path("/proc/net/tcp")
    if not table.is_file():
        pytest.skip("no /proc/net/tcp on this system")
    listening = [line.split()[1] for line in table.read_text().splitlines()[1:] if line.split()[3] == "0A"]
    ours = [address for address in listening if int(address.split(":")[1], 16) == app.port]
    assert ours == ["0100007F:" + f"{app.port:04X}"]  # 127.0.0.1, little-endian hex


def test_demo_without_a_trained_model_says_what_to_run(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "app.py"), "--demo", "--demo-dir",
                             str(tmp_path / "none")], cwd=REPO, env=tool_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and "python -m maskrcnn_benchmark.demo" in result.stderr
