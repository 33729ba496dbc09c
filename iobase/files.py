"""File modes for secrets, keys and personal data: 0600 files in 0700 folders.

Everything provisioning writes into a hub directory or a site folder (tokens, private keys,
the registry, the databases that hold names, ID numbers and phones) is for the service
user only. Public files (certificates, public keys, the CRL) are written 0644, but they live
in 0700 folders too, so nobody but the owner can even list the folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents, each 0700) and make `path` itself 0700."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass
    os.chmod(path, PRIVATE_DIR)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` readable by the owner only (0600), atomically; the folder must exist."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # O_CREAT's mode does not apply to an existing .tmp
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    tmp.replace(path)


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder (so a rename or a new file in it survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private(path: Path) -> None:
    """chmod an existing file to 0600 (or a folder to 0700) if it allows more."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    want = PRIVATE_DIR if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(st.st_mode) & want)
