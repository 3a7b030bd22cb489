"""One-member text ZIPs: writing them atomically and reading them defensively.

Subtask inputs and results travel as ZIP files holding a single text member
(the seed's format). A result ZIP comes from an untrusted provider, so the
reader trusts nothing in it: neither the member count, nor the sizes the
headers declare, nor the encoding. The member is read in bounded chunks, so
a ZIP bomb costs at most ``max_bytes`` plus one chunk of memory.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tutorial_app import meta
# The bounded reader lived here first; its names stay importable from here.
from tutorial_app.files import NotARegularFileError, read_file_bounded, write_atomically

__all__ = [
    "ArchiveError", "ArchiveTooLargeError", "CorruptArchiveError", "EmptyArchiveError",
    "NotARegularFileError", "NotAZipError", "NotUtf8Error", "TextMember", "TooManyMembersError",
    "UnexpectedMemberError", "read_file_bounded", "read_single_member", "read_text_zip",
    "write_text_zip",
]

_CHUNK = 64 * 1024
_SHOWN_CHARS = 80


class ArchiveError(ValueError):
    """A ZIP that is not a valid one-member UTF-8 text archive."""


class NotAZipError(ArchiveError):
    """The file is not a readable ZIP archive."""


class EmptyArchiveError(ArchiveError):
    """The ZIP has no member."""


class TooManyMembersError(ArchiveError):
    """The ZIP has more than one member."""


class UnexpectedMemberError(ArchiveError):
    """The ZIP's one member is not named as the caller requires."""


class ArchiveTooLargeError(ArchiveError):
    """The member is (or claims to be) larger than the limit when unpacked."""


class NotUtf8Error(ArchiveError):
    """The member's bytes are not UTF-8 text."""


class CorruptArchiveError(ArchiveError):
    """The ZIP's member cannot be read (bad CRC, truncated, encrypted, ...)."""


@dataclass(frozen=True)
class TextMember:
    """The single member of a text ZIP."""

    name: str
    text: str


def write_text_zip(path: Path, member: str, text: str) -> None:
    """Write a ZIP at ``path`` holding one member ``member`` with ``text`` (UTF-8).

    The file appears complete or not at all: it is written beside its final
    name and renamed into place.
    """
    def write(raw: BinaryIO) -> None:
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(member, text.encode("utf-8"))

    # Durable: a store commit may point at it.
    write_atomically(path, write)


def read_text_zip(
    source: Path | bytes, max_bytes: int, name: str | None = None, *, label: str | None = None,
) -> TextMember:
    """Read the single member of a ZIP (a file, or its bytes) as UTF-8 text.

    ``max_bytes`` bounds the member's unpacked size. ``name``, when given, is
    the one member name accepted: the ZIP must hold exactly one member with
    exactly that name (a result ZIP's member is named after its subtask id).
    ``label`` names the archive in messages (default: the file's name, or
    ``name`` for bytes). Raises a subclass of `ArchiveError` (a `ValueError`)
    saying what is wrong; `FileNotFoundError` (an `OSError`) if there is no file.
    """
    if isinstance(source, bytes):
        label = label or name or "archive"
        opened: Path | io.BytesIO = io.BytesIO(source)
    else:
        label = label or source.name
        opened = source
    try:
        zf = zipfile.ZipFile(opened, "r")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise NotAZipError(f"{label} is not a ZIP archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if not infos:
            raise EmptyArchiveError(f"{label} holds no file; expected exactly one")
        if len(infos) > 1:
            raise TooManyMembersError(
                f"{label} holds {len(infos)} files; expected exactly one")
        info = infos[0]
        shown = _shown(info.orig_filename)
        # orig_filename is the name as stored: zipfile cuts `filename` at a NUL.
        if name is not None and (info.filename != name or info.orig_filename != name):
            raise UnexpectedMemberError(
                f"{label} holds {shown}; expected one file named {_shown(name)}")
        if info.is_dir():
            raise EmptyArchiveError(f"{label} holds only a directory; expected one file")
        if info.file_size > max_bytes:
            raise ArchiveTooLargeError(
                f"{label}: {shown} declares {info.file_size} bytes unpacked;"
                f" the limit is {max_bytes}")
        data = _read_bounded(zf, info, max_bytes, f"{label}: {shown}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8Error(f"{label}: {shown} is not UTF-8 text (byte {exc.start})") from exc
    return TextMember(info.filename, text)


def read_single_member(
    path: Path, max_bytes: int = meta.MAX_SUBTASK_INPUT_BYTES, name: str | None = None,
) -> str:
    """The text of the single member of a subtask input or result ZIP (see `read_text_zip`).

    ``name``, when given, is the one member name accepted.
    """
    return read_text_zip(path, max_bytes, name).text


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int, what: str) -> bytes:
    """Read one member, stopping as soon as it exceeds ``max_bytes``."""
    chunks: list[bytes] = []
    size = 0
    try:
        with zf.open(info, "r") as member:
            while True:
                chunk = member.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise ArchiveTooLargeError(f"{what} unpacks to more than {max_bytes} bytes")
                chunks.append(chunk)
    except ArchiveError:
        raise
    # zipfile reports damage through several exception types.
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError,
            ValueError, OSError) as exc:
        raise CorruptArchiveError(f"{what}: cannot read it ({exc})") from exc
    return b"".join(chunks)


def _shown(member_name: str) -> str:
    """A member name for messages: it comes from the sender, so only its start is shown."""
    if len(member_name) <= _SHOWN_CHARS:
        return repr(member_name)
    return f"{member_name[:_SHOWN_CHARS]!r}... ({len(member_name)} characters)"
