"""Datasets: load files, detect their format, validate row by row, convert to the internal form,
clean, profile, and save versions. See `loader` for the trainer-facing `to_trl`."""

from .formats import FORMAT_HELP, FORMATS, convert, detect_format, to_messages
from .loader import Loaded, Problem, load_dataset_file, load_dataset_files, parse_mapping, scan, to_trl
from .store import import_file, preview_rows

__all__ = [
    "FORMATS", "FORMAT_HELP", "Loaded", "Problem", "convert", "detect_format", "import_file", "load_dataset_file",
    "load_dataset_files", "parse_mapping", "preview_rows", "scan", "to_messages", "to_trl",
]
