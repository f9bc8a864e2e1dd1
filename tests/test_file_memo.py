"""mmovss.io.memoised_per_file_version: once per version of a file."""
import os

import pytest

from mmovss.io import memoised_per_file_version


def test_once_per_file_version_and_again_after_a_rewrite(tmp_path):
    calls = []

    @memoised_per_file_version
    def size_of(path):
        calls.append(path)
        return len(open(path, 'rb').read())

    path = tmp_path / 'a.bin'
    path.write_bytes(b'abc')
    assert size_of(str(path)) == 3
    os.symlink(path, tmp_path / 'link.bin')
    assert size_of(str(tmp_path / 'link.bin')) == 3  # the same file by another path
    assert len(calls) == 1
    path.write_bytes(b'abcdef')  # another version (size and mtime)
    assert size_of(str(path)) == 6
    assert len(calls) == 2
    with pytest.raises(OSError):
        size_of(str(tmp_path / 'missing.bin'))


def test_further_arguments_are_part_of_the_key(tmp_path):
    calls = []

    @memoised_per_file_version
    def head(path, n):
        calls.append((path, n))
        return open(path, 'rb').read(n)

    path = tmp_path / 'a.bin'
    path.write_bytes(b'abcdef')
    assert head(str(path), 2) == b'ab'
    assert head(str(path), 3) == b'abc'
    assert head(str(path), 2) == b'ab'
    assert len(calls) == 2
    path.write_bytes(b'xyz')
    assert head(str(path), 2) == b'xy'
    assert len(calls) == 3


def test_a_file_replaced_with_its_size_and_mtime_kept_is_read_again(tmp_path):
    """``cp -p`` / ``tar x`` / ``os.utime`` can carry an mtime over; the
    inode and change time still tell the versions apart."""
    calls = []

    @memoised_per_file_version
    def content(path):
        calls.append(path)
        return open(path, 'rb').read()

    path, new = tmp_path / 'a.bin', tmp_path / 'b.bin'
    path.write_bytes(b'old')
    new.write_bytes(b'new')
    assert content(str(path)) == b'old'
    stat = os.stat(path)
    os.replace(new, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == stat.st_mtime_ns
    assert content(str(path)) == b'new'
    assert len(calls) == 2
