"""The playground page in a real browser: Debian's chromium, driven by selenium.

A person types a message and watches the reply stream in, each token coloured
by its probability; hovering a token shows the runners-up, and "Look inside"
draws one head's attention on a canvas. The tests do the same, wait on the
page's own signals (body[data-state], the reply's data-done, the canvas's
data-drawn), never on the clock, and fail on any error in the JS console.

Nothing downloads a browser: the tests use /usr/bin/chromium and
/usr/bin/chromedriver (`apt-get install chromium chromium-driver`, as .ci/run
does) and are skipped, saying so, where they are missing.

Run as a script, it takes the playground's screenshot for the docs from a real run:
    uv run python tests/serve/test_playground_browser.py RUN docs/serve-playground.png
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path

import pytest
import torch

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)
# Each token once (the scripted model is a bigram table); "é" is two byte tokens.
REPLY = "I ran to the café!"
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="no /usr/bin/chromium: apt-get install -y chromium chromium-driver (.ci/run does)",
)


# ------------------------------------------------------------------ the browser and the server
def start_browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_browser(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


# ------------------------------------------------------------------ what a person does
def wait(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def open_page(driver, url: str, temperature: float | None = None) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait(
        driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready"
    )
    if temperature is not None:  # as a person drags the slider
        driver.execute_script(
            "const t = document.getElementById('temperature');"
            "t.value = arguments[0]; t.dispatchEvent(new Event('input'));",
            temperature,
        )


def send(driver, text: str):
    """Type `text`, press Enter, wait for the reply to finish; returns the reply element."""
    from selenium.webdriver.common.by import By

    before = len(driver.find_elements(By.CSS_SELECTOR, ".message.assistant"))
    driver.find_element(By.ID, "input").send_keys(text + "\n")
    done = ".message.assistant[data-done]"
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, done)) > before)
    reply = driver.find_elements(By.CSS_SELECTOR, ".message.assistant")[-1]
    assert "failed" not in reply.get_attribute("class"), driver.find_element(By.ID, "error").text
    return reply


def count_appends(driver) -> None:
    """From now on, count how often a piece is added to a reply (window.appends)."""
    driver.execute_script(
        "window.appends = 0; new MutationObserver((records) => { for (const r of records)"
        " if (r.target.matches('.assistant .body') && r.addedNodes.length) window.appends++; })"
        ".observe(document.getElementById('messages'), {childList: true, subtree: true});"
    )


def hover_alternatives(driver, token) -> list[tuple[str, float]]:
    """Hover a token; the tooltip's rows as (token, probability), the chosen one first."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ActionChains(driver).move_to_element(token).perform()
    tooltip = driver.find_element(By.ID, "tooltip")
    wait(driver, lambda d: tooltip.is_displayed())
    rows = tooltip.find_elements(By.CSS_SELECTOR, ".row")
    chosen = tooltip.find_elements(By.CSS_SELECTOR, ".row.chosen")
    parse = lambda row: (  # noqa: E731
        row.find_element(By.CSS_SELECTOR, ".name").text,
        float(row.find_element(By.CSS_SELECTOR, ".pct").text.rstrip("%")) / 100,
    )
    return [parse(row) for row in chosen] + [parse(row) for row in rows if row not in chosen]


def look_inside(driver, head: int | None = None) -> str:
    """Open (or re-pick) the look-inside view; returns the canvas's data-drawn once drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    canvas = driver.find_element(By.ID, "attention")
    before = canvas.get_attribute("data-drawn")
    if head is None:
        driver.find_element(By.ID, "look-inside").click()
    else:
        Select(driver.find_element(By.ID, "head")).select_by_value(str(head))
    wait(driver, lambda d: canvas.get_attribute("data-drawn") not in (None, before))
    return canvas.get_attribute("data-drawn")


def canvas_colours(driver) -> int:
    """How many different colours the attention canvas shows (1: nothing drawn)."""
    return driver.execute_script(
        "const c = document.getElementById('attention');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "const seen = new Set(); for (let i = 0; i < d.length; i += 4)"
        " seen.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]); return seen.size;"
    )


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def text_of(element) -> str:
    return element.get_attribute("textContent")


def visible(token: str) -> str:
    """A token as the tooltip shows it (the page's `visible`)."""
    return token.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u2192")


# ------------------------------------------------------------------ the tests
@pytest.fixture(scope="module")
def chat_run(tmp_path_factory) -> Path:
    """The chat run that conftest's chat_server serves here: its greedy reply is REPLY."""
    from chat_runs import scripted_chat_run

    return scripted_chat_run(
        tmp_path_factory.mktemp("playground") / "chat", REPLY, block_size=128
    ).path


def first_token_odds(run_dir: Path, messages: list[dict]) -> dict[str, float]:
    """The model's own probabilities for the reply's first token, computed here by hand."""
    from slm_tokenizer.chat import render_conversation
    from slm_train import Run

    run = Run(run_dir)
    tokenizer = run.tokenizer()
    ids = render_conversation(tokenizer, messages, add_generation_prompt=True)[0]
    with torch.no_grad():
        probabilities = run.load_model("best", "cpu")(torch.tensor([ids]))[0, -1].softmax(-1)
    top = probabilities.topk(5)
    return {
        tokenizer.decode([i]): p
        for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
    }


def test_a_chat_reply_streams_in_coloured_with_alternatives_and_attention(
    browser, chat_run, chat_server, tmp_path
):
    from selenium.webdriver.common.by import By
    from slm_train import Run

    tokenizer = Run(chat_run).tokenizer()
    open_page(browser, chat_server.url, temperature=0)
    assert browser.find_element(By.ID, "model-kind").text == "chat"
    browser.find_element(By.ID, "system").send_keys("Be brief.")
    send(browser, "Hi!")
    count_appends(browser)
    reply = send(browser, "Who are you?")  # the second turn carries the first
    assert browser.execute_script("return window.appends") > 1  # drawn piece by piece

    tokens = reply.find_elements(By.CSS_SELECTOR, ".tok")
    assert text_of(reply.find_element(By.CSS_SELECTOR, ".body")) == REPLY
    # one span a token, but the two halves of "é" share one
    decoder = codecs.getincrementaldecoder("utf-8")()
    pieces = [decoder.decode(tokenizer.decode_bytes([i])) for i in tokenizer.encode_ordinary(REPLY)]
    assert [text_of(t) for t in tokens] == [piece for piece in pieces if piece]
    assert all(t.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)" for t in tokens)

    odds = first_token_odds(
        chat_run,
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": REPLY},
            {"role": "user", "content": "Who are you?"},
        ],
    )
    shown = hover_alternatives(browser, tokens[0])
    assert len(shown) == 5
    assert shown[0][0] == visible(text_of(tokens[0]))
    for token, probability in shown:
        assert probability == pytest.approx(odds[token.replace("\u2423", " ")], abs=1e-3)

    accent = next(t for t in tokens if text_of(t) == "é")
    hover_alternatives(browser, accent)
    title = browser.find_element(By.CSS_SELECTOR, "#tooltip .title").text
    assert title.startswith("2 tokens, together p = ")

    conversation = 2 * len(tokenizer.encode_ordinary(REPLY))
    drawn = look_inside(browser)
    layer, head, count = drawn.split("-")
    assert (layer, head) == ("0", "0") and int(count) > conversation
    read_back = text_of(browser.find_element(By.ID, "surprise"))
    assert read_back.startswith("<|im_start|>system\nBe brief.<|im_end|>") and "Hi!" in read_back
    assert canvas_colours(browser) > 3
    assert look_inside(browser, head=1) == f"0-1-{count}"
    browser.save_screenshot(str(tmp_path / "playground-chat.png"))
    assert console_errors(browser) == []


def test_a_pretrained_run_continues_text_and_colours_can_be_turned_off(browser, base_server):
    from selenium.webdriver.common.by import By

    open_page(browser, base_server.url)
    assert browser.find_element(By.ID, "model-kind").text == "text continuation"
    assert not browser.find_element(By.ID, "system").is_displayed()
    browser.find_element(By.ID, "seed").send_keys("7")
    browser.find_element(By.ID, "max_tokens").clear()
    browser.find_element(By.ID, "max_tokens").send_keys("12")
    reply = send(browser, "The cat sat on the")

    tokens = reply.find_elements(By.CSS_SELECTOR, ".tok")
    assert 1 <= len(tokens) <= 12
    shown = hover_alternatives(browser, tokens[0])  # the sampled token first, then the top 5
    assert shown[0][0] == visible(text_of(tokens[0])) and 0 < shown[0][1] <= 1
    # (up to 6 rows: the sampled token may be outside the top 5; fewer where two tokens
    # are both shown as U+FFFD, as completions' top_logprobs is a dict keyed by text)
    assert 2 <= len(shown) <= 6
    browser.find_element(By.ID, "colour").click()
    assert tokens[0].value_of_css_property("background-color") == "rgba(0, 0, 0, 0)"
    assert look_inside(browser).startswith("0-0-")
    assert canvas_colours(browser) > 3
    browser.find_element(By.ID, "new-chat").click()  # labelled Clear here
    assert browser.find_elements(By.CSS_SELECTOR, ".message") == []
    assert not browser.find_element(By.ID, "inside").is_displayed()
    assert console_errors(browser) == []


if __name__ == "__main__":  # the docs' screenshot: URL OUT.png [MESSAGE] (`slm-cli serve` runs)
    import tempfile

    url, out = sys.argv[1], Path(sys.argv[2])
    message = sys.argv[3] if len(sys.argv) > 3 else "Who are you?"
    with tempfile.TemporaryDirectory() as profile:
        driver = start_browser(Path(profile))
        try:
            driver.set_window_size(1400, 1000)
            open_page(driver, url)
            tokens = send(driver, message).find_elements("css selector", ".tok")
            look_inside(driver)
            hover_alternatives(driver, tokens[min(3, len(tokens) - 1)])
            driver.save_screenshot(str(out))
            errors = console_errors(driver)
        finally:
            driver.quit()
    print(f"wrote {out}" + (f"; console errors: {errors}" if errors else ""))
