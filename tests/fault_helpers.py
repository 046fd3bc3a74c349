"""Fault injection for the reliability tests: read-only folders, kill -9 at chosen moments, flipped bytes.

Read-only folders: ``chmod`` does not stop root (CI and these machines run tests as root), so for root the
command runs in a private mount namespace where the folder is bind-mounted read-only (``unshare -m``; falls back
to a user namespace, ``unshare -rm``). Nothing outside the command's own namespace changes. Without either, the
test is skipped with the reason. No os-level call is monkeypatched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child ``python`` that imports this checkout's raven_avatar."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAVEN_AVATAR_MODELS_DIR", None)
    return {**env, **extra}


def _ro_prefix(folders: Sequence[Path]) -> list[str]:
    # sh -c SCRIPT N DIR1..DIRN CMD...: bind-mount each DIR read-only over itself, then exec CMD.
    script = (
        'n=$1; shift; i=0; while [ "$i" -lt "$n" ]; do d=$1; shift; '
        'mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" || exit 97; i=$((i+1)); done; exec "$@"'
    )
    return ["sh", "-c", script, "sh", str(len(folders)), *map(str, folders)]


@contextlib.contextmanager
def _chmod_read_only(folders: Sequence[Path]) -> Iterator[None]:
    modes = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                modes[path] = path.stat().st_mode
                path.chmod(modes[path] & ~0o222)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def run_read_only(folders: Sequence[Path], cmd: Sequence[str], *, env: dict[str, str], timeout: float = 300,
                  ) -> subprocess.CompletedProcess:  # fmt: skip
    """Run ``cmd`` with ``folders`` read-only for it; skips the test if no way to make them read-only works."""
    folders = [Path(f) for f in folders]
    if os.geteuid() != 0:
        probe = folders[0] / ".ro-probe"
        with _chmod_read_only(folders):
            try:
                probe.touch()
            except OSError:
                return subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=timeout)
            probe.unlink()
        pytest.skip("chmod does not make folders read-only here")
    if shutil.which("unshare") is None:
        pytest.skip("running as root and unshare(1) is missing: no way to make a folder read-only")
    for ns in (["unshare", "-m"], ["unshare", "-rm"]):
        check = subprocess.run(
            [*ns, *_ro_prefix(folders), "sh", "-c", 'touch "$0/.ro-probe" 2>/dev/null && exit 98; exit 0',
             str(folders[0])], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if check.returncode == 0:
            return subprocess.run([*ns, *_ro_prefix(folders), *cmd], capture_output=True, text=True, env=env,
                                  timeout=timeout)  # fmt: skip
    pytest.skip("running as root without permission for a read-only bind mount (no CAP_SYS_ADMIN, no user ns)")


class Child:
    """A child Python process running ``code`` that reports progress lines on stdout; killed with SIGKILL."""

    def __init__(self, code: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip

    def wait_for(self, text: str) -> str:
        """Read lines until one contains ``text`` (fails if the child exits first)."""
        while True:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read()
                raise AssertionError(f"child ended before printing {text!r}: {err[-2000:]}")
            if text in line:
                return line

    def send(self, line: str = "go") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()


def flip_bytes(path: Path, offset: int | None = None, count: int = 16) -> None:
    """Invert ``count`` bytes in the middle of ``path`` keeping its size, mtime and inode (silent corruption)."""
    st = path.stat()
    offset = st.st_size // 2 if offset is None else offset
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_ino == st.st_ino and path.stat().st_mtime_ns == st.st_mtime_ns
