"""Open a report page in headless Chromium (Debian's package, driven by Playwright; nothing is
downloaded) and read back what a person would see: sections, images and the figures stated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class ShownImage:
    src: str
    loaded: bool
    natural_width: int


@dataclass(frozen=True)
class ShownPage:
    url: str
    title: str
    sections: list[str]
    images: list[ShownImage]
    figures: dict[str, str]  # data-figure name -> the text shown
    scripts: int
    requested: list[str]  # every URL the page fetched, the page itself first
    failed: list[str]

    def figure(self, name: str) -> float:
        return float(self.figures[name])


def show(url: str, headers: dict[str, str] | None = None) -> ShownPage:
    """Load `url` (file:// or http://) and wait until every image has loaded or failed."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: scripts/install-test-tools installs Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    requested: list[str] = []
    failed: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            context = browser.new_context(extra_http_headers=headers or {})
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(url, wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])"
            )
            shown = ShownPage(
                url=page.url,
                title=page.title(),
                sections=page.eval_on_selector_all("section", "els => els.map(e => e.id)"),
                images=[ShownImage(src, loaded, width) for src, loaded, width in images],
                figures=dict(
                    page.eval_on_selector_all(
                        "[data-figure]", "els => els.map(e => [e.dataset.figure, e.textContent])"
                    )
                ),
                scripts=page.eval_on_selector_all("script", "els => els.length"),
                requested=requested,
                failed=failed,
            )
        finally:
            browser.close()
    return shown


def assert_complete(page: ShownPage, sections: set[str]) -> None:
    """The expected sections are there, every image loaded, nothing came from elsewhere."""
    assert set(page.sections) == sections
    assert page.images
    for image in page.images:
        assert (image.loaded, image.natural_width > 0) == (True, True), f"{image.src} did not load"
    assert not page.failed
    assert page.scripts == 0
    base = page.url.rsplit("/", 1)[0] + "/"
    fetched = [url for url in page.requested if url != page.requested[0]]
    assert all(url.startswith(base) for url in fetched), page.requested
