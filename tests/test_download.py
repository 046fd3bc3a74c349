"""raven_avatar.engine.download against a local HTTP server with Range support."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from pathlib import Path

import pytest
from http_helpers import serve_files

from raven_avatar.engine.download import (
    ChecksumError,
    DownloadError,
    OfflineError,
    download_file,
    extract_from_wheel,
    file_sha256,
    is_offline,
    pypi_wheel,
)

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def server():
    with serve_files({"/f.bin": DATA}) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setattr("raven_avatar.engine.download._RETRY_DELAY", 0.01)
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RAVEN_AVATAR_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_download_verifies_and_returns_cached_file_without_network(server, tmp_path):
    dest = tmp_path / "out" / "f.bin"
    assert download_file(server.url + "/f.bin", dest, sha256=SHA, progress=False) == dest
    assert dest.read_bytes() == DATA
    assert _leftovers(dest.parent) == ["f.bin"]
    n = len(server.requests)
    download_file(server.url + "/f.bin", dest, sha256=SHA, progress=False)
    assert len(server.requests) == n


def test_resumes_from_existing_part_file(server, tmp_path):
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(DATA[:1000])
    download_file(server.url + "/f.bin", dest, sha256=SHA, progress=False)
    assert server.requests == [("/f.bin", "bytes=1000-")]
    assert dest.read_bytes() == DATA
    assert not (tmp_path / "f.bin.part").exists()


def test_dropped_connection_is_resumed_with_range_request(server, tmp_path):
    server.drops, server.drop_after = 1, 70_000
    dest = tmp_path / "f.bin"
    download_file(server.url + "/f.bin", dest, sha256=SHA, progress=False)
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=70000-")]
    assert dest.read_bytes() == DATA


def test_drop_without_retries_left_keeps_part_for_next_call(server, tmp_path):
    server.drops, server.drop_after = 3, 50_000  # more drops than automatic retries
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="kept in .*f.bin.part, resumed next time"):
        download_file(server.url + "/f.bin", dest, sha256=SHA, progress=False)
    assert not dest.exists()
    assert (tmp_path / "f.bin.part").stat().st_size == 150_000
    download_file(server.url + "/f.bin", dest, sha256=SHA, progress=False)
    assert server.requests[-1] == ("/f.bin", "bytes=150000-")
    assert dest.read_bytes() == DATA


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"x" * 5000)
    dest = download_file(server.url + "/f.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA


def test_stale_part_file_from_another_version_is_discarded(server, tmp_path, caplog):
    (tmp_path / "f.bin.part").write_bytes(b"an older version of the file")
    dest = download_file(server.url + "/f.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/f.bin", "bytes=28-"), ("/f.bin", None)]
    assert "downloading it from the start" in caplog.text


def test_complete_part_file_is_finished_on_416(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(DATA)
    dest = download_file(server.url + "/f.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA


def test_checksum_mismatch_leaves_nothing_half_written(server, tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"previous version")
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download_file(server.url + "/f.bin", dest, sha256=wrong, progress=False)
    err = info.value
    assert (err.expected, err.actual) == (wrong, SHA)
    assert str(dest) in str(err) and wrong in str(err) and SHA in str(err)
    assert dest.read_bytes() == b"previous version"  # never replaced by unverified data
    assert _leftovers(tmp_path) == ["f.bin"]


def test_http_error_and_unreachable_host_are_clear(server, tmp_path):
    with pytest.raises(DownloadError, match=r"cannot download .*/missing\.bin: HTTP 404"):
        download_file(server.url + "/missing.bin", tmp_path / "m.bin", progress=False)
    assert _leftovers(tmp_path) == []
    with socket_closed_port() as port, pytest.raises(DownloadError, match="Check the network connection"):
        download_file(f"http://127.0.0.1:{port}/f.bin", tmp_path / "m.bin", timeout=5, progress=False)
    assert _leftovers(tmp_path) == []


class socket_closed_port:  # noqa: N801 - used as a context manager
    """A local port with nothing listening."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc) -> None:
        pass


@pytest.mark.parametrize("var", ["RAVEN_AVATAR_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode(server, tmp_path, monkeypatch, var):
    assert not is_offline()
    monkeypatch.setenv(var, "1")
    assert is_offline()
    with pytest.raises(OfflineError, match=f"{var}=1"):
        download_file(server.url + "/f.bin", tmp_path / "f.bin", sha256=SHA, progress=False)
    assert server.requests == []
    (tmp_path / "f.bin").write_bytes(DATA)
    assert download_file(server.url + "/f.bin", tmp_path / "f.bin", sha256=SHA).read_bytes() == DATA
    monkeypatch.setenv(var, "0")
    assert not is_offline()


def test_concurrent_downloads_of_one_file(server, tmp_path):
    dest = tmp_path / "f.bin"
    errors = []

    def fetch():
        try:
            download_file(server.url + "/f.bin", dest, sha256=SHA, progress=False)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dest.read_bytes() == DATA
    assert _leftovers(tmp_path) == ["f.bin"]


def _make_wheel(path: Path, members: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path.read_bytes()


@pytest.mark.parametrize("per_version_json", [True, False])
def test_pypi_wheel_verified_cached_and_offline(server, tmp_path, monkeypatch, per_version_json):
    wheel = _make_wheel(tmp_path / "w.whl", {"demo_pkg/data.txt": b"hello"})
    files = [
        {"filename": "demo_pkg-1.0.tar.gz", "url": server.url + "/sdist", "digests": {"sha256": "0" * 64}},
        {
            "filename": "demo_pkg-1.0-py3-none-any.whl",
            "url": server.url + "/files/demo_pkg-1.0-py3-none-any.whl",
            "digests": {"sha256": hashlib.sha256(wheel).hexdigest()},
        },
    ]
    server.files["/files/demo_pkg-1.0-py3-none-any.whl"] = wheel
    if per_version_json:
        server.files["/pypi/demo-pkg/1.0/json"] = json.dumps({"urls": files}).encode()
    else:  # like the proxy on our build machine: only the project document is served
        server.files["/pypi/demo-pkg/json"] = json.dumps({"releases": {"0.9": [], "1.0": files}}).encode()
    monkeypatch.setenv("RAVEN_AVATAR_PYPI_URL", server.url + "/pypi")

    path = pypi_wheel("demo-pkg", "1.0", progress=False)
    assert path == tmp_path / "cache" / "wheels" / "demo_pkg-1.0-py3-none-any.whl"
    assert path.read_bytes() == wheel
    assert path.with_name(path.name + ".sha256").read_text().strip() == file_sha256(path)

    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    n = len(server.requests)
    assert pypi_wheel("demo-pkg", "1.0") == path
    assert len(server.requests) == n
    with open(path, "r+b") as f:  # corrupt the cached wheel: detected, and offline there is no way to fix it
        f.truncate(10)
    with pytest.raises(OfflineError, match="demo_pkg-1.0-py3-none-any.whl"):
        pypi_wheel("demo-pkg", "1.0")
    monkeypatch.delenv("RAVEN_AVATAR_OFFLINE")
    assert pypi_wheel("demo-pkg", "1.0", progress=False).read_bytes() == wheel


def test_pypi_wheel_unknown_version_and_wrong_digest(server, tmp_path, monkeypatch):
    monkeypatch.setenv("RAVEN_AVATAR_PYPI_URL", server.url + "/pypi")
    server.files["/pypi/demo-pkg/json"] = json.dumps({"releases": {"0.9": []}}).encode()
    with pytest.raises(DownloadError, match=r"demo-pkg==1.0 is not on PyPI .*versions there: 0.9"):
        pypi_wheel("demo-pkg", "1.0")
    wheel = _make_wheel(tmp_path / "w.whl", {"a": b"a"})
    server.files["/w.whl"] = wheel
    entry = {"filename": "demo_pkg-2.0-py3-none-any.whl", "url": server.url + "/w.whl", "digests": {"sha256": SHA}}
    server.files["/pypi/demo-pkg/2.0/json"] = json.dumps({"urls": [entry]}).encode()
    with pytest.raises(ChecksumError):
        pypi_wheel("demo-pkg", "2.0", progress=False)
    assert not (tmp_path / "cache" / "wheels" / "demo_pkg-2.0-py3-none-any.whl").exists()


def test_extract_from_wheel(tmp_path):
    wheel = tmp_path / "w.whl"
    _make_wheel(wheel, {"pkg/data/a.bin": DATA})
    dest = tmp_path / "out" / "a.bin"
    assert extract_from_wheel(wheel, "pkg/data/a.bin", dest, sha256=SHA).read_bytes() == DATA

    dest.write_bytes(b"old")
    with pytest.raises(ChecksumError, match="pkg/data/a.bin"):
        extract_from_wheel(wheel, "pkg/data/a.bin", dest, sha256="1" * 64)
    assert dest.read_bytes() == b"old"
    with pytest.raises(DownloadError, match="has no member pkg/nope"):
        extract_from_wheel(wheel, "pkg/nope", dest)
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match="cannot read .*bad.whl"):
        extract_from_wheel(tmp_path / "bad.whl", "pkg/data/a.bin", dest)
    assert _leftovers(dest.parent) == ["a.bin"]


def test_pypi_wheel_with_known_digest(server, tmp_path, monkeypatch):
    wheel = _make_wheel(tmp_path / "w.whl", {"a": b"a"})
    digest = hashlib.sha256(wheel).hexdigest()
    placed = tmp_path / "cache" / "wheels" / "demo_pkg-3.0-py3-none-any.whl"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(wheel)
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    assert pypi_wheel("demo-pkg", "3.0", sha256=digest) == placed  # placed by hand, verified offline
    with pytest.raises(OfflineError, match="or put demo_pkg-4.0-py3-none-any.whl and its sha256"):
        pypi_wheel("demo-pkg", "4.0")
    monkeypatch.delenv("RAVEN_AVATAR_OFFLINE")
    monkeypatch.setenv("RAVEN_AVATAR_PYPI_URL", server.url + "/pypi")
    entry = {"filename": "demo_pkg-4.0-py3-none-any.whl", "url": server.url + "/w.whl", "digests": {"sha256": digest}}
    server.files["/pypi/demo-pkg/4.0/json"] = json.dumps({"urls": [entry]}).encode()
    with pytest.raises(ChecksumError, match="PyPI publishes a different demo_pkg-4.0-py3-none-any.whl"):
        pypi_wheel("demo-pkg", "4.0", sha256="2" * 64)
    assert ("/w.whl", None) not in server.requests
