"""The demo page in a real browser (headless chromium) against the service on the shipped checkpoints:
draw a 1 and classify it, classify a shipped test image, run the pendulum, read stability reports, at
desktop and phone widths, with the API key the service asks for. Every test saves a screenshot.

The oracles are the service's JSON API itself (what the page shows must be what the API answers) and
the shipped sample's labels; the page must request nothing from any other host.
"""

import json

import pytest

from artifact.samples import load_sample

pytestmark = pytest.mark.browser

REPORT_TIMEOUT_MS = 480_000        # a stability report plus its figures, twice, on a busy machine

# A canvas's two halves (the predicted and the physics pendulum) as two short fingerprints.
HALF_FINGERPRINTS = """() => {
  const c = document.getElementById('pendulum-canvas');
  const ctx = c.getContext('2d');
  const hash = (x) => {
    const d = ctx.getImageData(x, 0, c.width / 2, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) % 1000000007;
    return h;
  };
  return {frame: Number(c.dataset.frame), left: hash(0), right: hash(c.width / 2)};
}"""


def _draw(page, points: list[tuple[float, float]]) -> None:
    """One mouse stroke through ``points``, given as fractions of the drawing canvas."""
    box = page.locator("#digit-canvas").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=12)
    page.mouse.up()


def test_page_loads_asks_for_the_key_and_lists_the_models(demo):
    page = demo.page
    assert page.title() == "AFRNN serving: try it"
    rows = page.locator("#models-table tbody tr")
    listed = {rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").all_inner_texts()
              for i in range(rows.count())}
    with demo.server.client() as client:
        served = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert set(listed) == set(served)
    mnist = listed["mnist"]
    assert mnist[0] == "mnist" and mnist[1] == "afrnn"
    assert f"{100 * served['mnist']['metrics']['test_accuracy']:.2f} %" in mnist[3]
    assert mnist[4].startswith("ready")
    assert "MSE" in listed["pendulum"][3]
    # the key is in the page's memory only: not in the field, not in any storage
    assert page.input_value("#api-key") == ""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    demo.screenshot("page-models", "#models")
    assert demo.foreign_requests() == []


def test_draw_a_one_and_classify_it(demo):
    page = demo.page
    page.select_option("#classify-model", "mnist")
    _draw(page, [(0.52, 0.15), (0.51, 0.45), (0.50, 0.85)])          # a vertical stroke: a 1
    page.click("#digit-classify")
    page.wait_for_selector("#classify-label:not([hidden])")
    label = page.inner_text("#classify-label-value")
    assert label == "1"
    # ten probability bars, the 1's the longest
    bars = page.locator("#prob-bars li")
    assert bars.count() == 10
    assert bars.nth(1).get_attribute("class") == "top"
    # the anytime curve: the confidence after each of the 784 pixels, with the predicted class bands
    curve = page.locator("#anytime-plot polyline")
    assert curve.count() == 1
    assert curve.get_attribute("data-points") == "784"
    assert len(curve.get_attribute("points").split()) == 784
    assert page.locator("#anytime-plot rect").count() >= 1
    assert "The prediction has been 1 since pixel" in page.inner_text("#anytime-caption")
    # what the page sent is what the API classifies: the same 28×28 image through /classify
    sent = page.evaluate("""() => {
      const c = document.getElementById('digit-preview');
      const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
      return Array.from({length: 784}, (_, i) => d[4 * i]);
    }""")
    assert sum(sent) > 0
    with demo.server.client() as client:
        r = client.post("/classify", json={"model": "mnist", "pixels": sent, "scale": 255})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["class_name"] == label
    demo.screenshot("page-classify", "#classify")
    assert demo.foreign_requests() == []


def test_classify_a_shipped_test_image(demo, wait):
    page = demo.page
    sample = load_sample("mnist")
    index = 3
    page.select_option("#classify-model", "mnist")
    wait(page, "document.querySelectorAll('#sample-index option').length > 0")
    assert page.locator("#sample-index option").count() == len(sample.labels)
    page.select_option("#sample-index", str(index))
    page.click("#sample-form button[type=submit]")
    wait(page, "document.getElementById('sample-status').textContent.includes('true class')")
    true_class = str(int(sample.labels[index]))
    assert f"true class: {true_class}" in page.inner_text("#sample-status")
    page.click("#digit-classify")
    page.wait_for_selector("#classify-label:not([hidden])")
    assert page.inner_text("#classify-label-value") == true_class
    assert page.locator("#anytime-plot polyline").get_attribute("data-points") == "784"
    demo.screenshot("page-sample", "#classify")
    # a CIFAR-10 test image with the CIFAR-10 model: the page shows what the API answers for it
    cifar = load_sample("cifar10")
    page.select_option("#classify-model", "cifar10")
    wait(page, "document.querySelector('#sample-index option')?.textContent.includes('test image') && "
               "document.getElementById('sample-status').textContent.includes('CIFAR-10')")
    page.select_option("#sample-index", "0")
    page.click("#sample-form button[type=submit]")
    wait(page, "document.getElementById('sample-status').textContent.includes('true class')")
    page.click("#digit-classify")
    wait(page, "document.getElementById('classify-status').textContent.startsWith('cifar10:')")
    with demo.server.client() as client:
        r = client.post("/classify", json={"model": "cifar10", "pixels": cifar.pixels[0].reshape(-1).tolist(),
                                           "scale": 255, "return_sequence": True})
    assert r.status_code == 200, r.text
    assert page.inner_text("#classify-label-value") == r.json()["predictions"][0]["class_name"]
    assert page.locator("#anytime-plot polyline").get_attribute("data-points") == "1024"
    # drawing is for MNIST models: with the CIFAR-10 model the page says so instead of sending it
    page.click("#digit-clear")
    _draw(page, [(0.5, 0.2), (0.5, 0.8)])
    page.click("#digit-classify")
    assert "load a test image" in page.inner_text("#classify-status")


def test_pendulum_sliders_run_and_animate_both_trajectories(demo, wait):
    page = demo.page
    for slider, value in (("theta1", "45"), ("theta2", "-30"), ("omega1", "10"), ("omega2", "-20"),
                          ("horizon", "29")):
        page.fill(f"#{slider}", value)
    assert page.inner_text("#theta1-out") == "45°"
    assert page.inner_text("#omega2-out") == "-20°/s"
    page.click("#pendulum-run")
    wait(page, "document.getElementById('pendulum-canvas').dataset.frames === '30'")
    wait(page, "Number(document.getElementById('pendulum-canvas').dataset.frame) >= 1")
    early = page.evaluate(HALF_FINGERPRINTS)
    wait(page, f"Number(document.getElementById('pendulum-canvas').dataset.frame) >= "
               f"{min(early['frame'] + 10, 29)}")
    late = page.evaluate(HALF_FINGERPRINTS)
    assert late["left"] != early["left"], "the predicted pendulum did not move"
    assert late["right"] != early["right"], "the physics pendulum did not move"
    wait(page, "document.getElementById('pendulum-canvas').dataset.frame === '29'")
    # the error plot: one point per predicted step, as the API computes it
    assert page.locator("#error-plot circle.point").count() == 29
    assert page.locator("#error-plot").get_attribute("data-points") == "29"
    energy = page.locator("#energy-plot polyline")
    assert energy.count() == 2 and all(energy.nth(i).get_attribute("data-points") == "29" for i in range(2))
    with demo.server.client() as client:
        r = client.post("/pendulum/predict", json={
            "initial_state": {"theta1": 45, "theta2": -30, "omega1": 10, "omega2": -20}, "units": "degrees",
            "steps": 29, "include_reference": True})
    assert r.status_code == 200, r.text
    step_mse = r.json()["trajectories"][0]["step_mse"]
    assert json.loads(page.locator("#error-plot").get_attribute("data-values")) == pytest.approx(step_mse)
    assert "29 steps" in page.inner_text("#error-caption")
    demo.screenshot("page-pendulum", "#pendulum")
    # the model picker: `pendulum` by default, the 10-second model on request
    assert page.input_value("#pendulum-model") == "pendulum"
    assert set(page.locator("#pendulum-model option").all_inner_texts()) == {"pendulum", "pendulum-10s",
                                                                              "pendulum-paper"}
    page.select_option("#pendulum-model", "pendulum-10s")
    page.click("#pendulum-run")
    wait(page, "document.getElementById('pendulum-status').textContent.startsWith('pendulum-10s: 29 steps')")
    assert demo.foreign_requests() == []


def test_stability_report_shows_the_verdict_beside_the_frnn(demo, wait):
    page = demo.page
    page.select_option("#stability-model", "mnist")
    page.click("#stability-form button[type=submit]")
    main = page.locator("#report-main .verdict")
    contrast = page.locator("#report-contrast .verdict")
    main.wait_for(timeout=REPORT_TIMEOUT_MS)
    contrast.wait_for(timeout=REPORT_TIMEOUT_MS)
    # the figures: the PNG endpoint's image, fetched with the key, decoded by the browser
    for panel in ("#report-main", "#report-contrast"):
        page.locator(f"{panel} img").wait_for(timeout=REPORT_TIMEOUT_MS)
        wait(page, f"document.querySelector('{panel} img').naturalWidth > 0", REPORT_TIMEOUT_MS / 1000)
    # what the page shows is what the API reports (now cached: the page asked for the same reports)
    with demo.server.client() as client:
        reports = {name: client.post(f"/models/{name}/stability", json={})
                   for name in ("mnist", "mnist-frnn")}
    for r in reports.values():
        assert r.status_code == 200, r.text
    assert main.inner_text() == reports["mnist"].json()["summary"]["verdict"]
    assert contrast.inner_text() == reports["mnist-frnn"].json()["summary"]["verdict"] == "unstable"
    assert "mnist-frnn" in page.inner_text("#report-contrast h3")
    reasons = reports["mnist"].json()["summary"]["verdict_reasons"]
    assert page.locator("#report-main ul li").all_inner_texts() == reasons
    assert page.locator("#report-main dl dt").count() >= 5
    demo.screenshot("page-stability", "#stability")
    assert demo.foreign_requests() == []


def test_keyboard_drawing_and_phone_width(demo):
    page = demo.page
    page.set_viewport_size({"width": 375, "height": 800})
    # readable on a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    # every form control has a label (for=, or an aria-label)
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
      .map((el) => el.id)""")
    assert unlabelled == []
    # draw a 1 with the keyboard alone: focus the canvas, lower the pen, move down, lift it
    page.focus("#digit-canvas")
    for _ in range(5):
        page.keyboard.press("ArrowUp")
    page.keyboard.press("Space")
    assert "down" in page.inner_text("#pen-state")
    for _ in range(14):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    page.focus("#digit-classify")                    # and Classify with Enter
    page.keyboard.press("Enter")
    page.wait_for_selector("#classify-label:not([hidden])")
    assert page.inner_text("#classify-label-value") == "1"
    page.locator("#classify").scroll_into_view_if_needed()
    demo.screenshot("page-phone")


def test_without_the_key_the_page_says_so(browser_context, shipped_server, api_key, wait, page_session):
    page = browser_context.new_page()
    try:
        page.goto(shipped_server.url + "/")
        wait(page, "document.getElementById('key-status').textContent.includes('needs an API key')")
        assert page.locator("#models-table tbody tr").count() == 0
        assert "401" in page.inner_text("#models-status")
        page.fill("#api-key", api_key + "-wrong")
        page.click("#key-form button[type=submit]")
        wait(page, "document.getElementById('models-status').textContent.includes('wrong API key')")
        assert page.locator("#models-table tbody tr").count() == 0
        page_session(page, shipped_server).screenshot("page-wrong-key", "#key-section")
    finally:
        page.close()
