"""stylize.atomic: whole files or nothing, for images, plots and logs alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import pytest

from stylize.atomic import write_atomically, write_text_atomically
from stylize.errors import OutputError


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_the_whole_content_and_nothing_else(tmp_path: Path) -> None:
    target = write_text_atomically(tmp_path / "log.csv", "a,b\r\n1,2\n")
    assert target.read_bytes() == b"a,b\r\n1,2\n"  # no newline translation
    assert leftovers(tmp_path) == ["log.csv"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), ValueError("unknown format")])
def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path, error: Exception) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def half_then_fail(handle: BinaryIO) -> None:
        handle.write(b"half")
        raise error

    with pytest.raises(OutputError) as info:
        write_atomically(target, half_then_fail)
    assert str(info.value).startswith(f"{target}: cannot write (")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["out.png"]


def test_ctrl_c_while_writing_propagates_and_cleans_up(tmp_path: Path) -> None:
    def interrupted(handle: BinaryIO) -> None:
        handle.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "out.png", interrupted)
    assert leftovers(tmp_path) == []


def test_a_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"nowhere/out\.png: cannot write \("):
        write_text_atomically(tmp_path / "nowhere" / "out.png", "x")


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_text_atomically(target, "new")
    assert target.read_text() == "new" and os.stat(target).st_mode & 0o777 == 0o640
