"""The clinician chat in headless Chromium: sign in, pick a demo patient, ask, and see the answer,
the chart and a working citation. A screenshot is saved in the test's output folder."""

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


@pytest.mark.slow
@pytest.mark.browser
def test_chat_answers_with_chart_and_citations(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (`.ci/run` installs it: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(f"{live_server.url}/chat/", wait_until="load")
        boxes = page.locator("input")
        boxes.nth(0).fill("clinician")
        boxes.nth(1).fill(live_server.key)
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#patient", timeout=60_000)
        page.locator("#patient input").click()
        page.locator("[data-testid=dropdown-option]").nth(1).click()
        page.wait_for_selector("#risk h3", timeout=60_000)
        assert "band" in page.locator("#risk").inner_text()
        page.locator("#question textarea").fill("why is this patient high risk?")
        page.locator("#ask").click()
        page.wait_for_selector("#answer a.cite", timeout=120_000)
        answer = page.locator("#answer").inner_text()
        assert "[F1]" in answer and "Decision support only" in answer
        assert page.locator("#chart canvas, #chart svg").count() >= 1
        assert "policy clinical@v1" in page.locator("#guard").inner_text()
        page.locator("#answer a.cite").first.click()
        cited = page.url.rsplit("#", 1)[-1]
        assert cited.startswith("ev-") and page.locator(f"#{cited}").is_visible()
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        browser.close()
    assert (tmp_path / "chat.png").stat().st_size > 10_000
