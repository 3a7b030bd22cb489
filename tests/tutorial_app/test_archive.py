"""Writing and defensively reading one-member text ZIPs."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from tutorial_app.archive import (
    ArchiveError, ArchiveTooLargeError, CorruptArchiveError, EmptyArchiveError, NotARegularFileError,
    NotAZipError, NotUtf8Error, TextMember, TooManyMembersError, UnexpectedMemberError,
    read_file_bounded, read_single_member, read_text_zip, write_text_zip,
)
from tutorial_app.files import FileTooLargeError


def test_round_trip_unicode(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    write_text_zip(path, "sub-1", "zażółć 🦀 text")
    assert read_text_zip(path, 100) == TextMember("sub-1", "zażółć 🦀 text")
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]
    assert read_single_member(path) == "zażółć 🦀 text"


def test_seed_style_zip_is_read(tmp_path: Path) -> None:
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as zf:  # stored, no compression, as the seed writes
        zf.writestr("sid", "abc 12")
    assert read_text_zip(path, 100).text == "abc 12"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("make, error, words", [
    (lambda p: p.write_bytes(b"plain text, not a zip"), NotAZipError, "not a ZIP"),
    (lambda p: p.write_bytes(b""), NotAZipError, "not a ZIP"),
    (lambda p: _zip(p, {}), EmptyArchiveError, "no file"),
    (lambda p: _zip(p, {"a": b"1", "b": b"2"}), TooManyMembersError, "2 files"),
    (lambda p: _zip(p, {"a": b"\xff\xfe\x00bad"}), NotUtf8Error, "not UTF-8"),
    (lambda p: _zip(p, {"a": b"0" * 1001}), ArchiveTooLargeError, "1001"),
])
def test_bad_archives_are_named(tmp_path: Path, make, error: type, words: str) -> None:
    path = tmp_path / "bad.zip"
    make(path)
    with pytest.raises(error, match=words) as info:
        read_text_zip(path, 1000)
    assert isinstance(info.value, ValueError)
    assert "bad.zip" in str(info.value)


def test_directory_member_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("dir/"), b"")
    with pytest.raises(EmptyArchiveError):
        read_text_zip(path, 100)


def _forge_declared_size(path: Path, real: bytes, declared: int) -> None:
    """Write a ZIP whose headers understate the member's size (a bomb in disguise)."""
    _zip(path, {"m": real})
    raw = bytearray(path.read_bytes())
    real_size = len(real).to_bytes(4, "little")
    fake = declared.to_bytes(4, "little")
    # Uncompressed size sits at offset 22 of the local header and 24 of the central one.
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    assert raw[local + 22:local + 26] == real_size and raw[central + 24:central + 28] == real_size
    raw[local + 22:local + 26] = fake
    raw[central + 24:central + 28] = fake
    path.write_bytes(bytes(raw))


def test_lying_headers_do_not_beat_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    _forge_declared_size(path, b"x" * 5_000_000, declared=10)
    assert path.stat().st_size < 50_000
    # zipfile stops at the declared size and then fails the CRC; either way
    # the reader refuses after reading at most the limit plus one chunk.
    with pytest.raises((ArchiveTooLargeError, CorruptArchiveError), match="bomb.zip"):
        read_text_zip(path, 1000)


def test_corrupt_member_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "crc.zip"
    with zipfile.ZipFile(path, "w") as zf:  # stored, so the payload bytes are visible
        zf.writestr("m", b"payload-payload")
    raw = path.read_bytes().replace(b"payload-payload", b"PAYLOAD-payload", 1)
    path.write_bytes(raw)
    with pytest.raises(CorruptArchiveError, match="cannot read"):
        read_text_zip(path, 100)


def test_missing_file_is_not_an_archive_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_text_zip(tmp_path / "nope.zip", 100)
    assert not issubclass(FileNotFoundError, ArchiveError)


def test_read_file_bounded_reads_only_regular_files(tmp_path: Path) -> None:
    real = tmp_path / "real.zip"
    real.write_bytes(b"12345")
    assert read_file_bounded(real, 5) == b"12345"
    with pytest.raises(FileTooLargeError):
        read_file_bounded(real, 4)
    # A result "file" that is a symlink to /etc/passwd is not read through.
    (tmp_path / "link.zip").symlink_to("/etc/passwd")
    with pytest.raises(NotARegularFileError, match="symlink"):
        read_file_bounded(tmp_path / "link.zip", 1 << 20)
    # Nor does a FIFO block the reader waiting for a writer.
    os.mkfifo(tmp_path / "fifo.zip")
    with pytest.raises(NotARegularFileError):
        read_file_bounded(tmp_path / "fifo.zip", 1 << 20)


def test_named_member_is_read(tmp_path: Path) -> None:
    path = tmp_path / "sub-1.zip"
    write_text_zip(path, "sub-1", "abc 12")
    assert read_text_zip(path, 100, name="sub-1") == TextMember("sub-1", "abc 12")
    assert read_text_zip(path.read_bytes(), 100, name="sub-1").text == "abc 12"
    assert read_single_member(path, 100, name="sub-1") == "abc 12"
    with pytest.raises(UnexpectedMemberError):
        read_single_member(path, 100, name="sub-2")


@pytest.mark.parametrize("member", ["../../tmp/evil", "sub-2", "SUB-1", "sub-1 ", "dir/sub-1", "sub-1.zip", "/sub-1"])
def test_member_not_named_after_the_subtask_is_refused(tmp_path: Path, member: str) -> None:
    path = _zip(tmp_path / "sub-1.zip", {member: b"abc 12"})
    with pytest.raises(UnexpectedMemberError, match="expected one file named 'sub-1'") as info:
        read_text_zip(path.read_bytes(), 100, name="sub-1", label="sub-1.zip")
    assert isinstance(info.value, ArchiveError)
    assert "sub-1.zip" in str(info.value)


def test_extra_members_are_refused_even_beside_the_right_one(tmp_path: Path) -> None:
    path = _zip(tmp_path / "s.zip", {"sub-1": b"abc 12", "../../tmp/evil": b"x"})
    with pytest.raises(TooManyMembersError, match="2 files"):
        read_text_zip(path, 100, name="sub-1")


def test_name_hidden_behind_a_nul_is_refused(tmp_path: Path) -> None:
    # zipfile cuts a stored name at NUL, so "sub-1\0evil" would read as "sub-1".
    path = _zip(tmp_path / "s.zip", {"sub-1Xevil": b"abc 12"})
    path.write_bytes(path.read_bytes().replace(b"sub-1Xevil", b"sub-1\x00evil"))
    with pytest.raises(UnexpectedMemberError):
        read_text_zip(path, 100, name="sub-1")


def test_messages_show_at_most_a_prefix_of_a_hostile_member_name(tmp_path: Path) -> None:
    path = _zip(tmp_path / "s.zip", {"x" * 60_000: b"abc 12"})
    with pytest.raises(UnexpectedMemberError) as info:
        read_text_zip(path, 100, name="sub-1")
    assert len(str(info.value)) < 300


def test_label_names_bytes_in_messages() -> None:
    with pytest.raises(NotAZipError, match="result of sub-1"):
        read_text_zip(b"not a zip", 100, label="result of sub-1")
