"""Zip and tar archives as data folders, read in place: nothing is ever extracted to disk.

A member is a training picture when it is a regular file with an image extension whose name stays inside
the archive. Every other member is listed with its reason, like the files a folder scan passes over:
directories and links, names that escape the archive (absolute, or with '..'), members that declare or
decompress to more than MAX_MEMBER_BYTES (a zip bomb), and members that cannot be read (truncated or
corrupt). A member is read up to that limit and no further, whatever its header claims.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import TracebackType

from .errors import UserError
from .imagefiles import IMAGE_EXTENSIONS, ScanResult

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_MEMBER_BYTES = 256 << 20


class ArchiveError(UserError):
    """The archive itself cannot be read."""


def is_archive(path: str | os.PathLike) -> bool:
    """True for a zip file, or a tar file plain or compressed with gzip, bzip2 or xz (by its name)."""
    name = str(path).lower()
    return Path(path).is_file() and name.endswith(ARCHIVE_SUFFIXES)


def _unsafe(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isfile():
        return "file"
    if member.isdir():
        return "directory"
    if member.issym() or member.islnk():
        return "link"
    return "special file (device or pipe)"


class Archive:
    """An open zip or tar file: its members, and their bytes (bounded)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        try:
            if self.path.name.lower().endswith(".zip"):
                self._zip = zipfile.ZipFile(self.path)
            else:
                self._tar = tarfile.open(self.path, "r:*")
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise ArchiveError(f"{str(self.path)!r} is not a readable archive: {e}") from None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for handle in (self._zip, self._tar):
            if handle is not None:
                handle.close()

    def scan(self) -> ScanResult:
        """Image members (in the archive's order, which reading follows) and the rest with reasons."""
        images: list[str] = []
        ignored: list[tuple[str, str]] = []
        try:
            entries = self._entries()
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise ArchiveError(f"{str(self.path)!r} is damaged: {e}") from None
        for name, kind, size in entries:
            if kind == "directory":
                continue
            if kind != "file":
                ignored.append((name, f"a {kind} (archives are read without following links)"))
            elif _unsafe(name):
                ignored.append((name, "a path that escapes the archive (absolute or with '..')"))
            elif PurePosixPath(name).name.startswith("."):
                continue
            elif Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                ignored.append((name, "not an image extension"))
            elif size > MAX_MEMBER_BYTES:
                ignored.append((name, f"decompresses to more than {MAX_MEMBER_BYTES >> 20} MB ({size:,} bytes)"))
            else:
                images.append(name)
        return ScanResult(images=images, ignored=sorted(ignored))

    def _entries(self) -> list[tuple[str, str, int]]:
        """(name, kind, declared size) of every member; kind is 'file', 'directory', or what else it is."""
        if self._zip is not None:
            return [(i.filename, "directory" if i.is_dir() else "file", i.file_size) for i in self._zip.infolist()]
        assert self._tar is not None
        return [(m.name, _tar_kind(m), m.size) for m in self._tar.getmembers()]

    def read(self, names: list[str]) -> Iterator[bytes | str]:
        """The bytes of each member of ``names`` (a scan's images, in the archive's order), or the reason it
        cannot be read. A tar is read in one pass, so a .tar.gz is decompressed once."""
        if self._zip is not None:
            for name in names:
                yield self._read_zip(name)
            return
        assert self._tar is not None
        pending = iter(names)
        wanted = next(pending, None)
        try:
            for member in self._tar:
                if wanted is None:
                    return
                if member.name == wanted and member.isfile():
                    yield self._read_tar(member)
                    wanted = next(pending, None)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            problem = f"truncated or corrupt ({e})"
            while wanted is not None:
                yield problem
                wanted = next(pending, None)
            return
        while wanted is not None:  # the archive ended early
            yield "truncated or corrupt (the archive ends before this member)"
            wanted = next(pending, None)

    def _read_zip(self, name: str) -> bytes | str:
        assert self._zip is not None
        try:
            with self._zip.open(name) as f:
                data = f.read(MAX_MEMBER_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as e:
            return f"truncated or corrupt ({e})"
        return data if len(data) <= MAX_MEMBER_BYTES else f"decompresses to more than {MAX_MEMBER_BYTES >> 20} MB"

    def _read_tar(self, member: tarfile.TarInfo) -> bytes | str:
        assert self._tar is not None
        try:
            f = self._tar.extractfile(member)
            if f is None:
                return "not a regular file"
            data = f.read(MAX_MEMBER_BYTES + 1)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            return f"truncated or corrupt ({e})"
        if len(data) < member.size:
            return "truncated or corrupt (shorter than its header says)"
        return data if len(data) <= MAX_MEMBER_BYTES else f"decompresses to more than {MAX_MEMBER_BYTES >> 20} MB"
