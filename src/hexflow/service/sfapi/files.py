"""Files a caller may reach through the file utilities: each project's directory
``<home>/work/<project>`` (its runs' work directories live there too), and nothing else.

A path is allowed when it lies in a root of a project the caller reaches with the needed
scope, both as written (``..`` collapsed) and with every symlink resolved; so ``..``,
absolute paths elsewhere and symlinks pointing out are all refused. A relative path is
relative to the caller's project directory (its "home"). Operational failures (no such
file, not a directory) are ``FileProblem``s, which the facade answers as SFAPI's
``status: ERROR`` with ls's wording.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 64 << 20  # the largest file one download or upload moves


class FileProblem(Exception):
    """What ``ls`` or ``cat`` would print on stderr; the request itself was fine."""


@dataclass(frozen=True)
class Area:
    """The roots one request may use, and where relative paths start (None: nowhere)."""

    roots: tuple[Path, ...]
    home: Path | None

    def resolve(self, raw: str) -> tuple[Path, str]:
        """(the absolute path, the path as the caller names it) of ``raw``, if allowed."""
        if "\0" in raw:
            raise FileProblem(f"{raw!r}: invalid path")
        if raw.startswith("/"):
            shown = "/" + raw.lstrip("/")
            path = Path(os.path.normpath(shown))
        else:
            if self.home is None:
                raise FileProblem(
                    f"{raw!r}: a relative path needs one project; this credential reaches "
                    "several, so give an absolute path"
                )
            shown = raw
            path = Path(os.path.normpath(self.home / raw))
        self.check(path, raw)
        return path, shown

    def check(self, path: Path, raw: str) -> None:
        """The path as written, and its directory with symlinks resolved, lie in a root."""
        if not self._inside(path):
            raise _outside(raw)
        if path not in self.roots and not self._inside(Path(os.path.realpath(path.parent))):
            raise _outside(raw)

    def check_target(self, path: Path, raw: str) -> None:
        """The path with its last component followed too (reading or writing through it)."""
        if not self._inside(Path(os.path.realpath(path))):
            raise _outside(raw)

    def _inside(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.roots)


def _outside(raw: str) -> FileProblem:
    return FileProblem(f"{raw}: Permission denied (outside the directories of your projects)")


def project_root(home: Path, project: str) -> Path:
    root = home / "work" / project
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(os.path.realpath(root))


# ---------------------------------------------------------------------- ls
def ls(area: Area, raw: str) -> list[dict[str, Any]]:
    path, shown = area.resolve(raw)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FileProblem(f"ls: cannot access '{raw}': No such file or directory") from None
    except NotADirectoryError:
        raise FileProblem(f"ls: cannot access '{raw}': Not a directory") from None
    if stat.S_ISLNK(st.st_mode):
        return [_entry(st, f"{shown} -> {os.readlink(path)}")]
    if not stat.S_ISDIR(st.st_mode):
        return [_entry(st, shown)]
    area.check_target(path, raw)
    parent = path.parent
    parent_st = os.lstat(parent) if area._inside(parent) else st  # no peeking above a root
    entries = [_entry(st, "."), _entry(parent_st, "..")]
    try:
        names = sorted(os.listdir(path))
    except PermissionError:
        raise FileProblem(f"ls: cannot open directory '{raw}': Permission denied") from None
    for name in names:
        try:
            child = os.lstat(path / name)
        except FileNotFoundError:
            continue  # removed while listing
        entries.append(_entry(child, name))
    return entries


def _entry(st: os.stat_result, name: str) -> dict[str, Any]:
    return {
        "perms": stat.filemode(st.st_mode),
        "hardlinks": st.st_nlink,
        "user": _user(st.st_uid),
        "group": _group(st.st_gid),
        "size": float(st.st_size),
        "date": dt.datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%dT%H:%M:%S"),
        "name": name,
    }


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# ---------------------------------------------------------------------- read / write
def read_file(area: Area, raw: str) -> bytes:
    path, _ = area.resolve(raw)
    area.check_target(path, raw)
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_FILE_BYTES:
                raise FileProblem(f"{raw}: larger than {MAX_FILE_BYTES} bytes")
            return f.read()
    except FileNotFoundError:
        raise FileProblem(f"cat: {raw}: No such file or directory") from None
    except IsADirectoryError:
        raise FileProblem(f"cat: {raw}: Is a directory") from None
    except PermissionError:
        raise FileProblem(f"cat: {raw}: Permission denied") from None


def write_file(area: Area, raw: str, data: bytes) -> Path:
    path, _ = area.resolve(raw)
    area.check_target(path, raw)
    if not path.parent.is_dir():
        raise FileProblem(f"{raw}: No such file or directory")
    if path.is_dir():
        raise FileProblem(f"{raw}: Is a directory")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise FileProblem(f"{raw}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


# ---------------------------------------------------------------------- trees (transfers)
def tree(area: Area, path: Path, raw: str) -> list[str]:
    """The relative paths under the directory ``path``, once every symlink in it is found
    to point inside the roots (a copy of the tree would read through them)."""
    out: list[str] = []
    for top, dirs, files in os.walk(path):  # symlinked directories are not descended
        for name in sorted(dirs + files):
            full = Path(top) / name
            rel = str(full.relative_to(path))
            if full.is_symlink():
                area.check_target(full, f"{raw.rstrip('/')}/{rel}")
            out.append(rel)
    return out


def check_writes(area: Area, path: Path, rels: list[str], raw: str) -> None:
    """Writing each of ``rels`` under ``path`` stays inside the roots: no directory on the
    way is a symlink pointing out."""
    for rel in rels:
        area.check(Path(os.path.normpath(path / rel)), f"{raw.rstrip('/')}/{rel}")
