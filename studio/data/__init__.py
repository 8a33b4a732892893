"""Datasets: load files, detect their format, validate row by row, convert to chat messages."""

from .loader import Loaded, Problem, detect_format, load_dataset_file, to_messages
from .store import import_file, preview_rows

__all__ = ["Loaded", "Problem", "detect_format", "import_file", "load_dataset_file", "preview_rows", "to_messages"]
