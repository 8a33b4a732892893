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
