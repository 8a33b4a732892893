"""Names typed by users (runs, presets, dataset versions) never escape $STUDIO_HOME."""

import pytest

from studio.config import RunConfig
from studio.data.versions import safe_name
from studio.errors import StudioError
from studio.jobs import presets, registry

HOSTILE = ["../../etc/passwd", "..", "/abs/path", "a/../../b", "name\x00with-nul", "~/.ssh/id_rsa", "run; rm -rf /"]


@pytest.mark.parametrize("name", HOSTILE)
def test_run_ids_stay_inside_runs(studio_home, name):
    run_id = registry.new_run_id(name)
    record = registry.create(run_id, name=name, method="lora", model="embedded", dataset="d")
    assert record.run_dir.resolve().parent == (studio_home / "runs").resolve()
    assert "/" not in run_id and ".." not in run_id


@pytest.mark.parametrize("name", HOSTILE)
def test_preset_names_stay_inside_presets(studio_home, name):
    try:
        saved = presets.save_preset(name, RunConfig.from_dict({"data": "x.jsonl"}))
    except StudioError:
        return  # refused with a message is fine too
    for path in studio_home.rglob("*"):
        assert path.resolve().is_relative_to(studio_home.resolve())
    assert saved in presets.list_presets()


@pytest.mark.parametrize("name", HOSTILE)
def test_dataset_version_names_are_sanitised(name):
    try:
        cleaned = safe_name(name)
    except StudioError:
        return
    assert "/" not in cleaned and ".." not in cleaned and cleaned.strip()


@pytest.mark.parametrize("name", HOSTILE + ["héllo wörld", "v1.2", "   ", "a" * 200])
def test_one_sanitiser_for_every_name(name, studio_home):
    """Run ids, presets, dataset versions/files, suites and exports all go through studio.paths.safe_name."""
    from studio import export
    from studio.data.store import _safe
    from studio.paths import safe_name as one

    try:
        expected = one(name)
    except StudioError as err:
        assert "needs letters, digits, - or _" in str(err)
        for other in (safe_name, _safe):
            with pytest.raises(StudioError):
                other(name)
        assert export.safe_name(name) == "model"
        return
    assert safe_name(name) == expected and export.safe_name(name) == expected and _safe(name) == expected[:40].strip("-")
    assert set(expected) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") and len(expected) <= 60
    assert registry.new_run_id(name).split("-", 2)[-1] == (one(name.lower().replace("_", "-"), limit=24, fallback="run"))
