"""The web console in a real browser (Playwright driving Debian's Chromium, headless),
against the demo's cluster after ``test_demo.py`` checked it: sign in (a wrong key is
refused), upload a dataset and see its statistics, start a tiny training job and watch
its loss chart draw, open the demo adapter's lineage, ask base model and adapter in the
playground, see the carbon chart. Each test saves a screenshot under the test's
``screenshots`` folder (``GARDEN_SCREENSHOTS`` names another, e.g. ``docs/``)."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]

CHROMIUM = "/usr/bin/chromium"
#: The flags the issue names: no sandbox (root in a container), no GPU, and nothing that
#: reaches out of the machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
#: Milliseconds a page element may take to appear (a 2-core machine, Ray busy).
WAIT_MS = 60_000


@pytest.fixture(scope="module", autouse=True)
def _expect_timeout():
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("GARDEN_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), (
        f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium package")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def console(demo):
    assert demo.returncode == 0, demo.output[-3000:]
    assert demo.console_url, "the demo printed no console URL"
    return demo.console_url


def new_page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    return page


def sign_in(page, url: str, key: str) -> None:
    page.goto(url)
    page.locator("#signin-key input").fill(key)
    page.locator("#signin-button").click()


@pytest.fixture(scope="module")
def page(browser, console, demo):
    """One signed-in page shared by the tests below, in file order."""
    page = new_page(browser)
    sign_in(page, console, demo.admin_key)
    page.locator("#whoami").get_by_text("Signed in as").wait_for()
    yield page
    page.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


#: Data points a Gradio native plot (Vega, drawn as SVG) shows: the vertices of its line
#: marks plus its bars; hover and axis marks are not counted.
CHART_POINTS_JS = """(id) => {
    const el = document.querySelector('#' + id);
    if (!el) return 0;
    let n = 0;
    for (const p of el.querySelectorAll('g.mark-line.plot_marks path'))
        n += ((p.getAttribute('d') || '').match(/[ML]/g) || []).length;
    return n + el.querySelectorAll('g.mark-rect.plot_marks path').length;
}"""


#: The longest line a Gradio line plot draws, in vertices.
LONGEST_LINE_JS = """(id) => {
    const el = document.querySelector('#' + id);
    const counts = [...(el ? el.querySelectorAll('g.mark-line.plot_marks path') : [])]
        .map(p => ((p.getAttribute('d') || '').match(/[ML]/g) || []).length);
    return Math.max(0, ...counts);
}"""


def screenshot(page, path: Path) -> None:
    """Save the whole page once every event is done, with no open dropdown or toast."""
    page.keyboard.press("Escape")
    page.mouse.click(1, 1)  # away from any dropdown, and let its list fade out
    page.wait_for_timeout(500)
    settle(page)
    page.screenshot(path=path, full_page=True, style=".toast-wrap { display: none !important; }")


def settle(page) -> None:
    """Wait until no Gradio event is pending (every visible status tracker is hidden)."""
    page.wait_for_function("""() => ![...document.querySelectorAll(
        '[data-testid=status-tracker]')].some(e => !e.classList.contains('hide')
        && e.offsetParent !== null && !e.innerText.includes('Error'))""")


def test_sign_in_refuses_a_wrong_key_then_shows_the_overview(browser, console, demo, shots):
    page = new_page(browser)
    sign_in(page, console, "gk_not_a_key")
    page.get_by_text("401 unauthenticated").first.wait_for()
    assert not page.locator("#tabs").is_visible()
    assert "gk_not_a_key" not in page.content()

    page.locator("#signin-key input").fill(demo.admin_key)
    page.locator("#signin-button").click()
    page.locator("#whoami").get_by_text("Signed in as").wait_for()
    assert "(admin)" in page.locator("#whoami").inner_text()
    # the key is kept server-side: the page no longer holds it anywhere
    assert demo.admin_key not in page.content()
    summary = page.locator("#overview-summary")
    summary.get_by_text("CPUs in use").wait_for()
    for app in ("gateway", "llm", "media", "console"):
        expect(page.locator("#overview-apps")).to_contain_text(app)
    screenshot(page, shots / "console-overview.png")
    page.close()


def test_upload_a_dataset_and_see_its_statistics(page, shots, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}
            for i in range(24)]
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    open_tab(page, "Datasets")
    page.locator("#dataset-file input[type=file]").set_input_files(str(path))
    page.locator("#dataset-name textarea").fill("console-sums")
    page.locator("#dataset-upload").click()
    stats = page.locator("#dataset-stats")
    stats.get_by_text("console-sums").wait_for()
    text = stats.inner_text()
    assert "24 rows" in text and "prompt length: mean" in text
    expect(page.locator("#dataset-schema")).to_contain_text("messages")
    expect(page.locator("#dataset-preview")).to_contain_text("What is 0 plus 0?")
    screenshot(page, shots / "console-dataset.png")


def test_a_training_job_draws_its_loss_curve_live(page, shots):
    open_tab(page, "Training")
    page.locator("#train-name textarea").fill("console-tiny")
    page.locator("#train-dataset input").click()
    page.get_by_role("option", name=re.compile("console-sums")).first.click()
    for field, value in (("max_steps", "3"), ("per_device_train_batch_size", "2"),
                         ("max_seq_length", "128"), ("logging_steps", "1"),
                         ("num_workers", "1")):
        page.locator(f"#train-{field} input").fill(value)
    page.locator("#train-submit").click()
    toast = page.get_by_text(re.compile(r"Job job_\w+ submitted"))
    job_id = re.search(r"job_\w+", toast.first.inner_text()).group(0)
    summary = page.locator("#train-summary")
    summary.get_by_text(job_id, exact=True).wait_for()
    # the job's page refreshes itself every 2 s while it runs: the train loss line gets
    # a second point (steps 1 and 2 of 3, one metric point per step)
    page.wait_for_function(
        f"""(id) => document.querySelector('#train-summary').innerText.includes(id)
            && ({LONGEST_LINE_JS})('train-loss') >= 2""",
        arg=job_id, timeout=600_000, polling=2000)
    assert re.search(r"[2-9] loss points|\d\d+ loss points", summary.inner_text())
    screenshot(page, shots / "console-training.png")
    if "running" in summary.inner_text() or "queued" in summary.inner_text():
        page.locator("#train-cancel").click()
        summary.get_by_text(re.compile("cancelled|completed")).wait_for(timeout=120_000)


def test_the_demo_adapters_lineage_graph(page, shots):
    open_tab(page, "Models")
    page.locator("#model-pick input").click()
    page.get_by_role("option", name=re.compile(r"chatterbot-lora.*\(adapter\)")).first.click()
    details = page.locator("#model-details")
    details.get_by_text("trained by job").wait_for()
    assert "training carbon" in details.inner_text()
    assert re.search(r"serving \(all callers\): [1-9]\d* requests", details.inner_text())
    # drawn by Mermaid (not the code block's text): an SVG flowchart with a node per row
    graph = page.locator("#model-lineage svg[aria-roledescription^=flowchart]")
    graph.wait_for()
    assert graph.locator("g.node").count() >= 5
    drawn = graph.text_content() or ""
    for text in ("trained on", "produced", "served", "chatterbot-train", "(adapter)"):
        assert text in drawn, (text, drawn)
    screenshot(page, shots / "console-lineage.png")


#: Samples both playground answer boxes every 10 ms into ``window.__answers`` (each
#: side's distinct texts, in order), so a test sees whether the text arrived in parts.
SAMPLE_ANSWERS_JS = """() => {
  window.__answers = {base: [], adapter: []};
  setInterval(() => {
    for (const side of ["base", "adapter"]) {
      const box = document.querySelector(`#play-${side}-answer textarea`);
      const seen = window.__answers[side];
      if (box && seen[seen.length - 1] !== box.value) seen.push(box.value);
    }
  }, 10);
}"""


def test_the_playground_streams_base_and_adapter_side_by_side(page, shots):
    open_tab(page, "Playground")
    page.locator("#play-adapter input").click()
    page.get_by_role("option", name=re.compile("chatterbot-lora")).first.click()
    expect(page.locator("#play-base textarea")).to_have_value("SmolLM2-135M-Instruct")
    page.locator("#play-prompt textarea").fill("What is a computer?")
    # what each answer box holds, sampled by the browser every 10 ms while they stream
    page.evaluate(SAMPLE_ANSWERS_JS)
    page.locator("#play-send").click()
    answers = {}
    for side in ("base", "adapter"):
        stats = page.locator(f"#play-{side}-stats")
        stats.get_by_text("g CO2eq").wait_for(timeout=180_000)
        assert re.search(r"[1-9]\d* tokens out", stats.inner_text())
        answers[side] = page.locator(f"#play-{side}-answer textarea").input_value().strip()
        assert answers[side]
    seen = page.evaluate("window.__answers")
    growing = {side: [v for v in values if v.strip()] for side, values in seen.items()}
    for side, texts in growing.items():
        # each box only ever grew, to the answer it ends with
        assert texts and texts[-1].strip() == answers[side], (side, texts)
        assert all(b.startswith(a) for a, b in itertools.pairwise(texts)), (side, texts)
    # streamed: the base's answer (up to max_tokens 64) grew over at least two updates, a
    # part then the rest. Both sides stream through the same function; the adapter's
    # chatterbot-style reply can be a dozen tokens, which a fast engine may deliver to the
    # browser in one network read (seen once in CI: one update), so it is not counted.
    assert len(growing["base"]) >= 2, growing["base"]
    # greedy decoding (temperature 0): the adapter's weights change the answer
    assert answers["base"] != answers["adapter"], answers
    screenshot(page, shots / "console-playground.png")


def test_the_carbon_chart_and_totals(page, shots):
    open_tab(page, "Carbon & usage")
    totals = page.locator("#carbon-totals")
    totals.get_by_text("training:").wait_for()
    assert re.search(r"over [1-9]\d* job", totals.inner_text())
    # training and inference of the demo: the base model's and the adapter's bars
    page.wait_for_function(f"({CHART_POINTS_JS})('carbon-by-model') >= 2")
    screenshot(page, shots / "console-carbon.png")


def test_the_media_tab_lists_the_providers_and_names_a_missing_token(page, shots):
    # the demo configures no provider token (none can be reached from here): the tab
    # shows each provider's state, and a generation is refused naming the variable
    open_tab(page, "Media")
    providers = page.locator("#media-providers")
    providers.get_by_text("not configured (set STABILITY_API_KEY)").wait_for()
    page.locator("#media-prompt textarea").fill("a lighthouse at dusk")
    page.locator("#media-style input").click()
    page.get_by_role("option", name="Cinematic").click()
    page.locator("#media-provider input").click()
    page.get_by_role("option", name="stability").click()
    page.locator("#media-generate").click()
    page.get_by_text(re.compile(r"503 .*STABILITY_API_KEY")).first.wait_for()
    screenshot(page, shots / "console-media.png")
