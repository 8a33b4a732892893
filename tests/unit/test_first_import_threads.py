"""transformers' lazy module is not thread-safe on a first import: in a fresh process, four threads
doing `from transformers import AutoTokenizer` at once fail in three of them ("cannot import name
'AutoTokenizer'"); the studio's loaders import it under one lock (models.import_transformers), so two
Gradio events loading a tokenizer at once (Data tab: load + Show tokens) both get it."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

THREADS = """
import threading
from studio.models import import_transformers
errors = []
def work():
    try:
        import_transformers()
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    except Exception as err:
        errors.append(repr(err))
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print("errors:", errors)
"""


def test_concurrent_first_imports_of_transformers_all_succeed():
    done = subprocess.run([sys.executable, "-c", THREADS], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "errors: []", done.stdout
