"""The launcher's safe defaults: loopback only, and no public bind without a login."""

import subprocess
import sys

import pytest

import launch
from tests.conftest import REPO


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.5", True), ("0.0.0.0", False), ("192.168.1.4", False), ("example.com", False)])
def test_loopback_detection(host, loopback):
    assert launch.is_loopback(host) is loopback


def test_default_host_is_loopback():
    assert launch.parse_args([]).host == "127.0.0.1"


def test_public_host_without_auth_is_refused_before_anything_starts(studio_home):
    result = subprocess.run([sys.executable, "launch.py", "--host", "0.0.0.0", "--port", "1"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without a login" in result.stderr
    assert "--auth" in result.stderr and "Traceback" not in result.stderr


def test_auth_file_and_bad_credentials(tmp_path):
    creds = tmp_path / "users"
    creds.write_text("# team\nalice:s3cret\nbob:pw\n")
    assert launch.read_auth(launch.parse_args(["--auth-file", str(creds)])) == [("alice", "s3cret"), ("bob", "pw")]
    with pytest.raises(SystemExit, match="user:password"):
        launch.read_auth(launch.parse_args(["--auth", "nocolon"]))
    assert launch.read_auth(launch.parse_args([])) is None
