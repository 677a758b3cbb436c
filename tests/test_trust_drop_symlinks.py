"""Drop folders never follow symbolic links (to files or folders) and never read outside the drop root (issue 16, finding 3)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from automodel.errors import UnsafePathError
from automodel.safety import open_inside, private_copy_inside, regular_files_inside
from automodel.sessions import SessionStore
from resources.settings import AutomodelSettings
from sensors.local_drop import local_drop_sensor


def _aged(path: Path) -> Path:
    past = time.time() - 10
    os.utime(path, (past, past), follow_symlinks=False)
    return path


def _build(drop: Path, tmp_path: Path, penguins) -> None:
    """A drop folder a hostile user prepared: links to a system file, to a CSV outside the drop root, to folders outside it."""
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    penguins.head(40).to_csv(outside / "secret.csv", index=False)
    (drop / "mallory").mkdir(parents=True)
    penguins.head(30).to_csv(drop / "mallory" / "ok.csv", index=False)
    _aged(drop / "mallory" / "ok.csv")
    os.symlink("/etc/passwd", drop / "mallory" / "passwd.csv")
    os.symlink(outside / "secret.csv", drop / "mallory" / "secret.csv")
    os.symlink(outside, drop / "mallory" / "linked_folder")  # a folder link: its CSV must not be listed either
    os.symlink(outside, drop / "eve")  # a whole user folder that is a link
    os.symlink(drop / "mallory" / "ok.csv", drop / "mallory" / "same_again.csv")  # even a link inside the root is not followed
    for link in ("passwd.csv", "secret.csv", "linked_folder", "same_again.csv"):
        _aged(drop / "mallory" / link)
    _aged(drop / "eve")


def test_the_drop_sensor_ignores_links_to_files_and_folders(home, tmp_path, penguins):
    drop = tmp_path / "drop"
    _build(drop, tmp_path, penguins)
    assert sorted(rel for rel, _ in regular_files_inside(drop)) == ["mallory/ok.csv"]
    settings = AutomodelSettings.from_env(drop_dir=str(drop))
    instance = dg.DagsterInstance.ephemeral()
    result = local_drop_sensor(dg.build_sensor_context(instance=instance, cursor=None, resources={"settings": settings}))
    assert [r.run_key.split("@")[0] for r in result.run_requests] == ["mallory/ok.csv"]
    store = SessionStore(settings.layout.sessions_db)
    staged = [Path(store.manifest(r.partition_key).source_uri) for r in result.run_requests]
    assert [p.read_text() for p in staged] == [(drop / "mallory" / "ok.csv").read_text()]
    assert not any(p.is_symlink() for p in settings.layout.users_dir.rglob("*")), "nothing staged is a link"
    assert not list((home / "tmp").glob(".drop-*")), "the private copies are removed after staging"


def test_a_link_swapped_in_after_the_listing_is_refused_not_followed(tmp_path, penguins):
    drop = tmp_path / "drop"
    (drop / "u").mkdir(parents=True)
    penguins.head(5).to_csv(drop / "u" / "a.csv", index=False)
    with open_inside(drop, "u/a.csv") as handle:
        assert handle.read() == (drop / "u" / "a.csv").read_bytes()  # a regular file inside the root is read
    (drop / "u" / "a.csv").unlink()
    os.symlink("/etc/passwd", drop / "u" / "a.csv")
    with pytest.raises(UnsafePathError, match="never follow links"):
        open_inside(drop, "u/a.csv")
    os.rename(drop / "u", drop / "u_real")
    os.symlink("/etc", drop / "u")  # the user's folder itself replaced by a link
    with pytest.raises(UnsafePathError, match="never follow links"):
        open_inside(drop, "u/passwd")
    for escape in ("../outside.csv", "/etc/passwd", "u/../../x.csv"):
        with pytest.raises(UnsafePathError):
            open_inside(drop, escape)
    with pytest.raises(UnsafePathError), private_copy_inside(drop, "u/passwd", tmp_path / "scratch"):
        pass
    assert list((tmp_path / "scratch").iterdir()) == [], "a refused copy leaves nothing behind"
