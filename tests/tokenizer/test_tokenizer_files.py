"""The atomic writers every package shares (slm_tokenizer.files)."""

from __future__ import annotations

import os
import stat

import pytest
from slm_tokenizer import files


def test_writes_bytes_and_text_and_creates_the_folder(tmp_path):
    target = tmp_path / "a" / "b" / "data.bin"
    files.write_bytes_atomically(target, b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"
    files.write_text_atomically(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    assert os.listdir(target.parent) == ["data.bin"]  # no temporary file left


def test_mode_follows_the_umask_not_mkstemp(tmp_path):
    previous = os.umask(0o027)
    try:
        files.write_text_atomically(tmp_path / "x.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        files.write_bytes_atomically(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_slm_train_uses_the_same_helpers():
    slm_train_files = pytest.importorskip("slm_train.files")
    assert slm_train_files.write_bytes_atomically is files.write_bytes_atomically
    assert slm_train_files.write_text_atomically is files.write_text_atomically
