"""Atomic status document writes."""

from __future__ import annotations

import os
import stat
import threading

from pywps_gridengine.status import atomic_write


def test_replaces_content_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "job.xml"
    target.write_text("old")
    atomic_write(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["job.xml"]


def test_file_is_readable_by_the_web_server(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "job.xml", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "job.xml").stat().st_mode) == 0o644


def test_concurrent_reader_never_sees_a_partial_document(tmp_path):
    target = tmp_path / "status.xml"
    docs = ["<a>" + "A" * 200_000 + "</a>", "<b>" + "B" * 300_000 + "</b>"]
    atomic_write(target, docs[0])
    stop = threading.Event()
    seen: set[str] = set()
    bad: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            text = target.read_text()
            if text in docs:
                seen.add(text[:3])
            else:
                bad.append(len(text))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            atomic_write(target, docs[i % 2])
    finally:
        stop.set()
        thread.join()
    assert bad == []
    assert seen  # the reader did read


def test_failed_write_keeps_the_old_document(tmp_path, monkeypatch):
    target = tmp_path / "job.xml"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    try:
        atomic_write(target, "new")
    except OSError:
        pass
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["job.xml"]
