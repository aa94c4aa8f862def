"""A model registry on a plain directory (local disk or a mounted volume).

::

    registry/
      versions/1/      an artifact (manifest.json, arrays.npz, CHECKSUM, optional SIGNATURE)
      versions/2/
      CURRENT          the served version number; replaced atomically (write a temporary file, fsync, rename)
      HISTORY.jsonl    one line per register, promote and rollback: who moved the pointer from where to where
      LOCK             held (flock) by register, promote and rollback, so that two of them never interleave

Versions are integers given by the registry in order. ``promote`` only moves the pointer forward;
going back is ``rollback``, said explicitly. Both verify the target first, with the same checks the
workers run when the caller passes them (``verify``), so CURRENT never points at a version workers refuse.
Workers serving a registry read ``CURRENT`` between
batches and reload when it changes (see :mod:`stream_scorer.model.reload`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream_scorer.errors import ModelArtifactError
from stream_scorer.model import artifact

CURRENT_FILE = "CURRENT"
HISTORY_FILE = "HISTORY.jsonl"
LOCK_FILE = "LOCK"
VERSIONS_DIR = "versions"


def is_registry(path: Path) -> bool:
    """Whether ``path`` is a registry (it has a ``versions`` directory) rather than one artifact."""
    return (path / VERSIONS_DIR).is_dir()


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One registered version, as listed."""

    version: int
    path: Path
    name: str
    created_at: str
    checksum: str
    current: bool
    metrics: dict[str, Any]


class Registry:
    """The registry rooted at ``root``; :meth:`create` makes an empty one."""

    def __init__(self, root: Path, verify: Callable[[Path], object] = artifact.load) -> None:
        if not is_registry(root):
            raise ModelArtifactError(f"{root} is not a model registry (no {VERSIONS_DIR}/ directory)")
        self.root = root
        self._verify = verify  # raises ModelArtifactError on a version that must not be served

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.root / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def create(root: Path, verify: Callable[[Path], object] = artifact.load) -> Registry:
        """Open the registry at ``root``, creating an empty one if the directory is new or empty."""
        if root.exists() and not is_registry(root) and any(root.iterdir()):
            raise ModelArtifactError(f"{root} exists and is not a model registry; choose an empty directory")
        (root / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
        return Registry(root, verify)

    def versions(self) -> list[int]:
        """Registered version numbers, ascending."""
        return sorted(int(p.name) for p in (self.root / VERSIONS_DIR).iterdir() if p.name.isdigit())

    def path(self, version: int) -> Path:
        """The artifact directory of ``version``; raises if it is not registered."""
        path = self.root / VERSIONS_DIR / str(version)
        if not path.is_dir():
            raise ModelArtifactError(f"version {version} is not registered in {self.root}; see `model list`")
        return path

    def current(self) -> int | None:
        """The served version, or None before the first promotion."""
        try:
            text = (self.root / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        if not text.isdigit():
            raise ModelArtifactError(f"{self.root / CURRENT_FILE} does not hold a version number: {text[:40]!r}")
        return int(text)

    def current_path(self) -> Path:
        """The artifact directory of the served version."""
        version = self.current()
        if version is None:
            raise ModelArtifactError(f"registry {self.root} has no current version yet; run `model promote`")
        return self.path(version)

    def register(self, write: Callable[[Path, int], None]) -> int:
        """Add the next version: ``write(directory, version)`` fills a staging directory that is then renamed
        into place, so a half-written artifact is never visible. Returns the new version number."""
        with self._locked():
            existing = self.versions()
            version = (existing[-1] if existing else 0) + 1
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
            try:
                write(staging, version)
                artifact.load(staging)  # only a complete, consistent artifact is registered
                os.rename(staging, self.root / VERSIONS_DIR / str(version))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._log("register", version, None)
        return version

    def promote(self, version: int) -> None:
        """Serve ``version``: it must be registered, verify, and be newer than the current one."""
        with self._locked():
            current = self.current()
            if current is not None and version <= current:
                raise ModelArtifactError(
                    f"version {version} is not newer than the current version {current}; "
                    "promotion only moves forward (use `model rollback` to go back)"
                )
            self._move(version, current, "promote")

    def rollback(self, version: int | None = None) -> int:
        """Serve an earlier version: ``version``, or the one served before the current. Returns it."""
        with self._locked():
            current = self.current()
            if current is None:
                raise ModelArtifactError("nothing to roll back: the registry has no current version")
            if version is None:
                earlier = [v for v in self._served() if v < current]
                if not earlier:
                    raise ModelArtifactError(f"no version was served before {current}")
                version = earlier[-1]
            if version >= current:
                raise ModelArtifactError(f"rollback goes back: version {version} is not older than {current}")
            self._move(version, current, "rollback")
        return version

    def describe(self) -> list[VersionInfo]:
        """Every registered version with its name, creation time, checksum and validation metrics."""
        current = self.current()
        infos = []
        for version in self.versions():
            path = self.path(version)
            manifest = json.loads((path / "manifest.json").read_text())
            infos.append(
                VersionInfo(
                    version=version,
                    path=path,
                    name=str(manifest.get("name", "")),
                    created_at=str(manifest.get("created_at", "")),
                    checksum=(path / "CHECKSUM").read_text().strip(),
                    current=version == current,
                    metrics=dict(manifest.get("metrics", {})),
                )
            )
        return infos

    def history(self) -> list[dict[str, Any]]:
        """The register, promote and rollback records, oldest first."""
        try:
            lines = (self.root / HISTORY_FILE).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def _served(self) -> list[int]:
        return [int(h["version"]) for h in self.history() if h["action"] in ("promote", "rollback")]

    def _move(self, version: int, previous: int | None, action: str) -> None:
        self._verify(self.path(version))  # never point at an artifact the workers would refuse
        _write_atomically(self.root / CURRENT_FILE, f"{version}\n")
        self._log(action, version, previous)

    def _log(self, action: str, version: int, previous: int | None) -> None:
        record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "action": action, "version": version}
        if previous is not None:
            record["from"] = previous
        with (self.root / HISTORY_FILE).open("a") as history:
            history.write(json.dumps(record) + "\n")
            history.flush()
            os.fsync(history.fileno())


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old content or the new one, never a torn write (rename is atomic on POSIX)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)
