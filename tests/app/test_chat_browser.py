"""The clinician chat in headless Chromium: sign in, see the highest-risk patient with its chart
bars, pick another, ask, and see the answer and a working citation; then the API docs, served
from the installed package. A screenshot is saved in the test's output folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _signed_in(p, live_server):  # type: ignore[no-untyped-def]
    """Chromium on the chat page, signed in with the live server's key."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH)
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(f"{live_server.url}/chat/", wait_until="load")
    boxes = page.locator("input")
    boxes.nth(0).fill("clinician")
    boxes.nth(1).fill(live_server.key)
    page.get_by_role("button", name="Login").click()
    return browser, page


@pytest.mark.slow
@pytest.mark.browser
def test_chat_answers_with_chart_and_citations(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (`.ci/run` installs it: apt-get install chromium)")
    with sync_playwright() as p:
        browser, page = _signed_in(p, live_server)
        # signed in, the highest-risk patient is picked and shown without another pick
        page.wait_for_selector("#risk h3", timeout=60_000)
        first = page.locator("#risk").inner_text()
        assert "band" in first
        bars = page.locator("#chart .mark-rect path")  # the bars themselves, one per fact
        bars.first.wait_for(timeout=30_000)
        facts = page.locator("#evidence [id^=ev-F]").count()
        assert bars.count() == facts >= 3
        page.locator("#patient input").click()
        page.locator("[data-testid=dropdown-option]").nth(1).click()
        page.wait_for_function(
            "t => document.querySelector('#risk').innerText !== t", arg=first, timeout=60_000
        )
        assert "band" in page.locator("#risk").inner_text()
        page.locator("#question textarea").fill("why is this patient high risk?")
        page.locator("#ask").click()
        page.wait_for_selector("#answer a.cite", timeout=120_000)
        answer = page.locator("#answer").inner_text()
        assert "[F1]" in answer and "Decision support only" in answer
        assert page.locator("#chart .mark-rect path").count() >= 3
        assert "policy clinical@v1" in page.locator("#guard").inner_text()
        page.locator("#answer a.cite").first.click()
        cited = page.url.rsplit("#", 1)[-1]
        assert cited.startswith("ev-") and page.locator(f"#{cited}").is_visible()
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        # the API docs render from the installed package under the content policy (no CDN)
        page.goto(f"{live_server.url}/docs", wait_until="load")
        page.wait_for_selector(".opblock", timeout=60_000)
        assert page.locator(".opblock").count() >= 5
        browser.close()
    assert (tmp_path / "chat.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.browser
def test_a_cds_card_link_opens_its_patient(live_server) -> None:  # type: ignore[no-untyped-def]
    """The link of a CDS card (`/chat/?task=…&icustay_id=N`) opens the chat on that patient and
    task, even one below the 50 highest risks the list shows."""
    from playwright.sync_api import sync_playwright

    from safellm.config import Settings
    from safellm.services.explanation import ExplanationService

    risks = ExplanationService(Settings(home=live_server.home, llm_model="fake")).risks(
        "icu_mortality"
    )
    stay = int(risks.iloc[-1]["icustay_id"])  # the lowest risk: not in the listed 50
    with sync_playwright() as p:
        browser, page = _signed_in(p, live_server)
        page.wait_for_selector("#risk h3", timeout=60_000)
        page.goto(
            f"{live_server.url}/chat/?task=icu_mortality&icustay_id={stay}", wait_until="load"
        )
        page.wait_for_function(
            "s => (document.querySelector('#patient input') || {}).value?.includes(s)",
            arg=str(stay),
            timeout=60_000,
        )
        assert (
            "ICU" in page.locator("#task input").input_value()
            or "icu" in page.locator("#task input").input_value()
        )
        page.wait_for_selector("#risk h3", timeout=60_000)
        assert "band" in page.locator("#risk").inner_text()
        browser.close()
