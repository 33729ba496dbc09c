"""A power cut for a process under test: what it wrote but did not fsync is lost.

`powercut.c` (an LD_PRELOAD shim, built here with gcc once per session) keeps, for every file
under a folder, the content it had at its last fsync/fdatasync. `PowerCut.cut()` is called
after the process was SIGKILLed: it writes that content back over each file and deletes SQLite's
-shm files (shared memory, never synced), so the folder holds what a disk would hold after the
power failed. See docs/testing.md "Power cuts" for what is and is not simulated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("powercut.c")


def build_shim(out_dir: Path) -> Path:
    """Compile powercut.c into out_dir/powercut.so (gcc, as the CI builds its clock shim)."""
    so = out_dir / "powercut.so"
    if not so.exists() or so.stat().st_mtime < SOURCE.stat().st_mtime:
        tmp = out_dir / f"powercut.{os.getpid()}.so"
        cmd = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(tmp), str(SOURCE), "-ldl", "-lpthread"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        tmp.replace(so)
    return so


class PowerCut:
    """The files under `root` of the processes started with `env()`, and their cut."""

    def __init__(self, shim: Path, root: Path):
        self.shim, self.root = shim, Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.shadow = Path(tempfile.mkdtemp(prefix="powercut-"))

    def env(self) -> dict[str, str]:
        """Environment for a process whose files under root may lose unsynced writes; the shim
        goes first in LD_PRELOAD and chains with one already there (CI's clock shift)."""
        chain = os.environ.get("LD_PRELOAD", "")
        return {
            "LD_PRELOAD": f"{self.shim}:{chain}" if chain else str(self.shim),
            "JIANCHA_POWERCUT_ROOT": str(self.root),
            "JIANCHA_POWERCUT_SHADOW": str(self.shadow),
        }

    def cut(self) -> dict[str, tuple[int, int]]:
        """After SIGKILL: put back each file's last synced content; {name: (bytes before,
        bytes after)} for the files that changed (an empty dict means nothing was lost)."""
        changed: dict[str, tuple[int, int]] = {}
        for path in sorted(p for p in self.root.rglob("*") if p.is_file() and not p.is_symlink()):
            st = path.stat()
            rel = str(path.relative_to(self.root))
            if path.name.endswith("-shm"):
                path.unlink()
                changed[rel] = (st.st_size, 0)
                continue
            synced = self.shadow / f"{st.st_dev}-{st.st_ino}"
            if not synced.exists():
                continue  # never written by a process under the shim
            data = synced.read_bytes()
            if data != path.read_bytes():
                with open(path, "r+b") as f:  # in place: the same inode, as a disk would have it
                    f.write(data)
                    f.truncate()
                changed[rel] = (st.st_size, len(data))
        return changed

    def close(self) -> None:
        """Remove the remembered content."""
        shutil.rmtree(self.shadow, ignore_errors=True)
