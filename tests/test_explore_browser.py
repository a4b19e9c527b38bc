"""The explorer in a real browser: Debian's chromium driven by Playwright.

A person's clicks on the page's canvases and tables; the numbers the page then shows are
compared with clearconv's own ops (the loop reference, the functional conv2d_backward),
computed here independently of the page's data. Skips with the reason when Playwright
or the system chromium is absent (.ci/run installs both). No timing is asserted.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from clearconv import functional as F
from clearconv import reference as R
from clearconv.explore import explore
from clearconv.train import zoo

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright "
                               "(pip install 'clearconv[explore]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("needs the system chromium (apt-get install chromium)", allow_module_level=True)

LABEL = 3


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    model = zoo.digits_cnn(rng=0)
    x = np.random.default_rng(1).random((1, 8, 8)).astype(np.float32)
    out = tmp_path_factory.mktemp("explore") / "explorer.html"
    explore(model, image=x, out=out, label=LABEL)
    return model, x, out


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    return page, problems


@pytest.fixture
def page(browser, case):
    page, problems = _open(browser, Path(case[2]).as_uri())
    yield page
    assert problems == [], f"the page logged: {problems}"
    page.close()


def _click_cell(page, selector, m, k, nth=0):
    canvas = page.locator(selector).nth(nth)
    cell = float(canvas.get_attribute("data-cell"))
    canvas.click(position={"x": (k + 0.5) * cell, "y": (m + 0.5) * cell + (1 if
                           canvas.get_attribute("data-h") == "1" else 0)})


def _num(page, selector) -> float:
    text = page.locator(selector).first.inner_text().strip()
    return float(text.replace("+inf", "inf").replace("-inf", "-inf"))


def _nums(page, selector) -> np.ndarray:
    return np.array([float(t) for t in page.locator(selector).all_inner_texts()])


def _approx(shown, value):
    """The page rounds to 4 significant digits."""
    np.testing.assert_allclose(shown, value, rtol=1e-3, atol=1e-7)


def _inputs(model, x):
    values = [x[None]]
    for layer in model.layers:
        values.append(layer.forward(values[-1]))
    return values


def test_page_loads_without_errors_and_shows_the_overview(page, case):
    model, x, _ = case
    assert page.locator("#fwd-overview .layer").count() == len(model.layers) + 2
    probs = _nums(page, "#probs .pv")
    _approx(probs, model.predict_proba(x[None])[0])
    assert page.locator("#pred").inner_text() == str(int(model.predict(x[None])[0].argmax()))


def test_conv_cell_shows_clearconvs_window_products_and_sums(page, case):
    model, x, _ = case
    values = _inputs(model, x)
    o, m, k = 5, 2, 1                     # second conv layer (index 3), its output 5
    _click_cell(page, "#fwd-overview canvas[data-array='out.3']", m, k, nth=o)
    conv = model.layers[3]
    steps = R.conv2d_forward_steps(values[3], conv.weight.value, conv.bias.value,
                                   padding="same")
    shown = _nums(page, "#fwd-detail [data-role='product']").reshape(16, 3, 3)
    _approx(shown, steps.products[0, o, m, k])
    _approx(_nums(page, "#fwd-detail [data-role='channel-sum']"), steps.channel_sums[0, o, m, k])
    _approx(_nums(page, "#fwd-detail [data-role='window']").reshape(16, 3, 3),
            steps.windows[0, m, k])
    _approx(_nums(page, "#fwd-detail [data-role='kernel']").reshape(16, 3, 3),
            conv.weight.value[o])
    _approx(_num(page, "#fwd-detail [data-role='z']"), steps.z[0, o, m, k])
    _approx(_num(page, "#fwd-detail [data-role='bias']"), conv.bias.value[o])
    _approx(_num(page, "#fwd-detail [data-role='activation']"), max(steps.z[0, o, m, k], 0))


def test_pool_cell_shows_its_window_and_winner(page, case):
    model, x, _ = case
    values = _inputs(model, x)
    c, m, k = 4, 1, 2
    _click_cell(page, "#fwd-overview canvas[data-array='out.2']", m, k, nth=c)
    steps = R.max_pool2d_forward_steps(values[2], 2)
    _approx(_num(page, "#fwd-detail [data-role='pool-out']"), steps.z[0, c, m, k])
    win = page.locator("#fwd-detail td.win")
    i, j = int(win.get_attribute("data-i")), int(win.get_attribute("data-j"))
    assert steps.masks[0, c, m, k, i, j]
    _approx(float(win.inner_text()), steps.z[0, c, m, k])


def test_dense_cell_and_softmax_show_their_sums(page, case):
    model, x, _ = case
    values = _inputs(model, x)
    o = 7
    _click_cell(page, "#fwd-overview canvas[data-array='out.9']", 0, o)
    dense = model.layers[9]
    y, _ = R.linear_forward(values[9], dense.weight.value, dense.bias.value)
    _approx(_num(page, "#fwd-detail [data-role='dense-out']"), y[0, o])
    terms = _nums(page, "#dense-all [data-role='dense-product']")
    _approx(np.sort(terms), np.sort(values[9][0] * dense.weight.value[o]))
    page.locator("#probs .prob").nth(o).click()
    probs, _ = R.softmax_forward(values[-1], axis=1)
    _approx(_num(page, "#fwd-detail [data-role='softmax-p']"), probs[0, o])


def test_backward_dw_and_da_equal_conv2d_backward(page, case):
    model, x, _ = case
    values = _inputs(model, x)
    page.click("nav button[data-view='v-backward']")
    # the gradient the page back-propagates: the loss of the label
    loss, cache = F.softmax_cross_entropy_forward(values[-1], np.array([LABEL]))
    _approx(_num(page, "#loss"), loss)
    dy = F.softmax_cross_entropy_backward(1.0, cache)
    grads = [None] * len(model.layers)
    vals = [x[None]]
    for layer in model.layers:
        vals.append(layer.forward(vals[-1], training=True))
    for i in range(len(model.layers) - 1, -1, -1):
        grads[i] = dy
        dy = model.layers[i].backward(dy)
    conv = model.layers[3]
    _, ccache = F.conv2d_forward(values[3], conv.weight.value, conv.bias.value, padding="same")
    dx, dw, _ = F.conv2d_backward(grads[3], ccache)
    # dW of kernel o=2, c=1, tap (0, 2): type the channel numbers, click the weight
    box = page.locator("#bwd-overview .layer", has=page.locator(
        "td[data-role='weight'][data-layer='3']"))
    box.locator("input[data-k='o']").fill("2")
    box.locator("input[data-k='o']").dispatch_event("change")
    box = page.locator("#bwd-overview .layer", has=page.locator(
        "td[data-role='weight'][data-layer='3']"))
    box.locator("input[data-k='c']").fill("1")
    box.locator("input[data-k='c']").dispatch_event("change")
    page.locator("td[data-role='weight'][data-layer='3'][data-i='0'][data-j='2']").click()
    _approx(_num(page, "#bwd-detail [data-role='dw']"), dw[2, 1, 0, 2])
    terms = _nums(page, "#bwd-detail [data-role='dw-term']")
    _approx(terms.sum(), dw[2, 1, 0, 2])
    # dA of the input pixel (channel 6, row 3, column 0) of the same conv layer
    _click_cell(page, "#bwd-overview canvas[data-array='T3.grad.2']", 3, 0, nth=6)
    _approx(_num(page, "#bwd-detail [data-role='da']"), dx[0, 6, 3, 0])
    sums = _nums(page, "#bwd-detail [data-role='da-channel-sum']")
    assert sums.shape == (32,)
    _approx(sums.sum(), dx[0, 6, 3, 0])
    rot = _nums(page, "#bwd-detail [data-role='w-rot'][data-o='4']").reshape(3, 3)
    _approx(rot, conv.weight.value[4, 6, ::-1, ::-1])
    # dA of a dense layer's input (layer 9's, the ReLU output 8): a sum over the outputs
    _click_cell(page, "#bwd-overview canvas[data-array='T3.grad.8']", 0, 11)
    dense = model.layers[9]
    _approx(_num(page, "#bwd-detail [data-role='dense-back-da']"),
            (grads[9][0] @ dense.weight.value)[11])
    # max-pool routing: a pooled gradient goes to its window's winner
    _click_cell(page, "#bwd-overview canvas[data-array='T3.grad.5']", 1, 0, nth=9)
    _approx(_num(page, "#bwd-detail [data-role='route-dz']"), grads[5][0, 9, 1, 0])
    assert page.locator("#bwd-detail td.win[data-role='mask']").inner_text() == "1"


def test_shape_playground_works_out_the_formula(page):
    page.click("nav button[data-view='v-shapes']")
    for name, value in (("n", "28"), ("f", "5"), ("p", "same"), ("s", "2"), ("d", "1")):
        page.fill(f"#sp-{name}", value)
    assert page.locator("#sp-result").inner_text() == "14"       # ceil(28 / 2)
    page.fill("#sp-p", "valid")
    assert page.locator("#sp-result").inner_text() == "12"       # floor((28 - 5)/2) + 1
    page.select_option("#sp-layer", "2")                         # the model's 2x2 max pool
    assert page.input_value("#sp-n") == "8" and page.input_value("#sp-f") == "2"
    assert page.locator("#sp-result").inner_text() == "4"


@pytest.fixture(scope="module")
def live():
    from clearconv.explore import resolve_model
    from clearconv.explore.server import ExplorerApp, ExplorerServer

    model, source = resolve_model(None)       # the digits CNN trained here (seconds)
    app = ExplorerApp(model, source)
    server = ExplorerServer(app, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_live_drawing_changes_the_prediction(browser, live):
    page, problems = _open(browser, live.url)
    before = page.locator("body").get_attribute("data-prediction")
    pad = page.locator("#pad")
    box = pad.bounding_box()
    page.mouse.move(box["x"] + 112, box["y"] + 20)
    page.mouse.down()
    for step in range(1, 19):                  # a vertical stroke: a "1"
        page.mouse.move(box["x"] + 112, box["y"] + 20 + step * 10)
    page.mouse.up()
    # the page redraws with the server's answer: the prediction is another class now
    page.wait_for_function(f"document.body.dataset.prediction !== '{before}'", timeout=30000)
    page.wait_for_function("document.getElementById('status').textContent.includes('updated')",
                           timeout=30000)
    assert "your upload" in page.locator("#facts").inner_text()
    assert problems == []
    page.close()


def test_live_class_picker_and_dropped_photo(browser, live, tmp_path):
    from PIL import Image

    page, problems = _open(browser, live.url)
    page.click("nav button[data-view='v-backward']")
    loss = page.locator("#loss").inner_text()
    page.select_option("#target", "1")                 # not the file's class: asks the server
    page.wait_for_function(f"document.getElementById('loss') && "
                           f"document.getElementById('loss').textContent !== '{loss}'",
                           timeout=30000)
    assert page.locator("#target").input_value() == "1"
    photo = np.full((60, 40), 255, np.uint8)           # dark ink on white paper: inverted
    photo[10:50, 18:23] = 0
    Image.fromarray(photo).save(tmp_path / "one.png")
    page.set_input_files("#file", str(tmp_path / "one.png"))
    page.wait_for_function("document.getElementById('status').textContent.includes('updated')",
                           timeout=30000)
    facts = page.locator("#facts").inner_text()
    assert "your upload" in facts and "inverted" in facts
    assert problems == []
    page.close()


def test_static_class_picker_switches_the_backward_pass(page, case):
    model, x, _ = case
    page.click("nav button[data-view='v-backward']")
    page.select_option("#target", "7")
    loss, _ = F.softmax_cross_entropy_forward(model.predict(x[None]), np.array([7]))
    _approx(_num(page, "#loss"), loss)
    assert page.locator("canvas[data-array='T7.grad.2']").count() == 16
