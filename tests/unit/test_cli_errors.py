"""Bad input through the real CLI: one clear line, exit 2, no traceback, nothing modified."""

import pytest

from tests.conftest import DEMO_DATA, run_cli, write_yaml


def assert_clean_error(result, *needles):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize(
    "values, needles",
    [
        ({"method": "lorra", "data": str(DEMO_DATA)}, ["method", "lorra", "lora"]),
        ({"learning_rate": -2e-4, "data": str(DEMO_DATA)}, ["learning_rate", "positive"]),
        ({"data": str(DEMO_DATA), "bogus": 1}, ["unknown key bogus"]),
        ({"data": "/nonexistent/data.jsonl"}, ["file not found", "/nonexistent/data.jsonl"]),
        ({"data": str(DEMO_DATA), "model": "/nonexistent/model"}, ["Model folder not found"]),
    ],
)
def test_bad_configs(tmp_path, studio_home, values, needles):
    result = run_cli("train", str(write_yaml(tmp_path / "run.yaml", **values)), home=studio_home, timeout=120)
    assert_clean_error(result, *needles)


def test_empty_dataset(tmp_path, studio_home):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run_cli("train", str(write_yaml(tmp_path / "a.yaml", data=str(empty))), home=studio_home, timeout=120)
    assert_clean_error(result, "empty", str(empty))


def test_unreadable_dataset_binary(tmp_path, studio_home):
    binary = tmp_path / "weights.jsonl"
    binary.write_bytes(bytes(range(256)) * 4)
    result = run_cli("train", str(write_yaml(tmp_path / "a.yaml", data=str(binary))), home=studio_home, timeout=120)
    assert_clean_error(result, "not valid UTF-8", "line 2")  # 0x80 comes after the \\n at byte 10


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_dataset_permissions(tmp_path, studio_home):
    locked = tmp_path / "locked.jsonl"
    locked.write_text('{"instruction": "q", "output": "a"}\n')
    locked.chmod(0)
    result = run_cli("train", str(write_yaml(tmp_path / "b.yaml", data=str(locked))), home=studio_home, timeout=120)
    locked.chmod(0o644)
    assert_clean_error(result, "cannot read")


def test_model_folder_without_weights(tmp_path, studio_home):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"not really")
    result = run_cli("train", str(write_yaml(tmp_path / "run.yaml", data=str(DEMO_DATA), model=str(folder))), home=studio_home, timeout=120)
    assert_clean_error(result, "no *.safetensors weights", "pickle")


def test_hub_id_offline_says_how_to_use_a_local_folder(tmp_path, studio_home):
    result = run_cli(
        "train",
        str(write_yaml(tmp_path / "run.yaml", data=str(DEMO_DATA), model="HuggingFaceTB/SmolLM2-360M-Instruct")),
        home=studio_home,
        timeout=120,
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert_clean_error(result, "not cached", "--local-dir", "give its path as the model")


def test_missing_config_file(tmp_path, studio_home):
    assert_clean_error(run_cli("train", str(tmp_path / "nope.yaml"), home=studio_home), "config file not found")


def test_user_files_are_not_modified(tmp_path, studio_home):
    config = write_yaml(tmp_path / "run.yaml", data=str(DEMO_DATA), method="nope")
    before = (config.read_bytes(), DEMO_DATA.read_bytes())
    run_cli("train", str(config), home=studio_home)
    assert (config.read_bytes(), DEMO_DATA.read_bytes()) == before
