"""The OBS overlay page in headless Chromium (Debian's ``chromium``, driven by Playwright): the live avatar on a
transparent page, and reconnecting by itself when the feed goes away and comes back."""

from __future__ import annotations

import io
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
playwright_api = pytest.importorskip("playwright.sync_api")

from server_helpers import QUIET, load_avatar, server_for_tests  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)")


@pytest.fixture(scope="module")
def server(cpu_poser, tmp_path_factory):
    with server_for_tests(cpu_poser, tmp_path_factory.mktemp("data")) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def frames_shown(page) -> int:
    return int(page.evaluate("document.body.dataset.frames"))


def test_overlay_shows_the_avatar_on_a_transparent_page_and_reconnects(server, browser, example_character_png):
    url, app = server
    with httpx.Client(base_url=url, timeout=120) as http:
        iid = load_avatar(http, example_character_png)
        http.post("/api/avatar/load_animator_settings", json={"instance_id": iid, "animator_settings": QUIET})
        http.post("/api/avatar/start", json={"instance_id": iid})
        page = browser.new_page(viewport={"width": 400, "height": 300})
        page.goto(f"{url}/overlay?instance_id={iid}")
        page.wait_for_function("Number(document.body.dataset.frames) >= 1", timeout=180_000)
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot(omit_background=True))).convert("RGBA"))
        assert shot.shape == (300, 400, 4)
        alpha = shot[..., 3]
        # Fitted at its aspect ratio (512x512 in 400x300: a centred 300x300 square): transparent page around it,
        # opaque avatar pixels inside.
        assert alpha[:, :40].max() == 0 and alpha[:, -40:].max() == 0 and alpha[0, 200] == 0
        assert (alpha[:, 50:350] == 255).sum() > 5000
        assert shot[alpha == 255][:, :3].std() > 10  # a picture, not a flat colour

        # The feed ends (avatar unloaded, as when the server stops); the page keeps retrying, and shows the avatar
        # again as soon as it is back under the same id (as the server's "default" after a restart).
        http.post("/api/avatar/unload", json={"instance_id": iid})
        page.wait_for_function("document.body.dataset.state === 'reconnecting'", timeout=60_000)
        before = frames_shown(page)
        inst = app.state.registry.load(example_character_png, instance_id=iid)
        inst.avatar.start()
        page.wait_for_function(f"Number(document.body.dataset.frames) > {before}", timeout=180_000)
        assert page.evaluate("document.body.dataset.state") == "live"

        # ?backdrop= and ?scale=: a chroma-key colour behind a half-size avatar.
        page2 = browser.new_page(viewport={"width": 400, "height": 300})
        page2.goto(f"{url}/overlay?instance_id={iid}&backdrop=%2300ff00&scale=0.5")
        page2.wait_for_function("Number(document.body.dataset.frames) >= 1", timeout=180_000)
        shot = np.asarray(Image.open(io.BytesIO(page2.screenshot(omit_background=True))).convert("RGBA"))
        assert tuple(shot[5, 5]) == (0, 255, 0, 255)
        box = page2.evaluate("[canvas.style.width, canvas.style.height]")
        assert box == ["256px", "256px"]
        page.close()
        page2.close()
        http.post("/api/avatar/unload", json={"instance_id": iid})
