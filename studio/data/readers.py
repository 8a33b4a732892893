"""Read dataset files as a stream of records, one per example, with its 1-based row and file line.

File types: .json (array, or an object holding one), .jsonl/.ndjson, .csv, .tsv, .parquet, .txt/.md
(documents separated by blank lines), a `datasets` folder saved with `save_to_disk`, and a saved
studio version folder (manifest.json + data.parquet). Everything but .json and `datasets` folders
streams, so memory stays bounded on big files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import StudioError

try:  # orjson parses JSON lines several times faster; the standard library is the fallback
    import orjson

    _loads = orjson.loads
    _DecodeErrors = (orjson.JSONDecodeError,)
except ImportError:  # pragma: no cover
    _loads = json.loads
    _DecodeErrors = (json.JSONDecodeError,)

FILE_TYPES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".txt", ".md")
LINE_ORIENTED = (".jsonl", ".ndjson", ".csv", ".tsv", ".txt", ".md")


@dataclass
class Record:
    row: int  # 1-based
    line: int | None  # 1-based line in the file where the example starts, for line-oriented files
    data: object  # the parsed row, or None when it could not be read
    raw: str  # the text as read (for showing and fixing a broken line)
    error: tuple[str, str, str] | None = None  # (field, message, kind) when the row could not be read


def file_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "manifest.json").is_file() and (path / "data.parquet").is_file():
            return "version"
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "datasets"
        raise StudioError(
            f"{path} is a folder but not a saved dataset.",
            hint="Give a file (" + ", ".join(FILE_TYPES) + "), a folder saved with `datasets.save_to_disk`, or a studio dataset version.",
        )
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json" if suffix == ".json" else "jsonl"
    if suffix in (".csv", ".tsv", ".parquet"):
        return suffix[1:]
    if suffix in (".txt", ".md", ".text"):
        return "text"
    return "jsonl"  # unknown suffix: sniffed as JSON lines (a leading '[' is read as a JSON array)


def check_readable(path: Path) -> None:
    if not path.exists():
        raise StudioError(f"file not found: {path}.", hint="Check the path, or upload the file in the Data tab.")
    if path.is_file():
        try:
            with path.open("rb") as handle:
                head = handle.read(4096)
        except OSError as err:
            raise StudioError(f"cannot read {path}: {err.strerror}.", hint="Check the file's permissions.") from None
        if not head.strip() and path.stat().st_size < 4096 and file_kind(path) != "parquet":
            raise StudioError("the dataset is empty.", where=str(path), hint="Add at least one example.")


def iter_records(path: Path) -> Iterator[Record]:
    path = Path(path)
    check_readable(path)
    kind = file_kind(path)
    if kind == "jsonl":
        with path.open("rb") as handle:
            first = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        if first.startswith(b"["):
            kind = "json"
    readers = {"json": _json, "jsonl": _jsonl, "csv": _csv, "tsv": _csv, "parquet": _parquet, "text": _text, "datasets": _datasets, "version": _version}
    yield from readers[kind](path)


def _decode(raw: bytes, line: int) -> tuple[str, tuple[str, str, str] | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as err:
        return raw.decode("utf-8", "replace"), ("(line)", f"invalid UTF-8 at byte {err.start + 1} of the line; re-save the file as UTF-8", "invalid UTF-8")


def _jsonl(path: Path) -> Iterator[Record]:
    row = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            row += 1
            text, error = _decode(raw, number)
            if error:
                yield Record(row, number, None, text.rstrip("\r\n"), error)
                continue
            try:
                data = _loads(raw)
            except RecursionError:
                yield Record(row, number, None, text[:200], ("(line)", "JSON nested too deeply", "broken JSON"))
                continue
            except _DecodeErrors as err:
                message = str(err).split(":")[0] if _loads is not json.loads else err.msg
                yield Record(row, number, None, text.rstrip("\r\n"), ("(line)", f"broken JSON: {message}", "broken JSON"))
                continue
            yield Record(row, number, data, "" if isinstance(data, dict) else text.rstrip("\r\n"))


def _json(path: Path) -> Iterator[Record]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise StudioError("the file is not valid UTF-8.", where=f"{path} line {line}", hint="Re-save it as UTF-8.") from None
    if not text.strip():
        raise StudioError("the dataset is empty.", where=str(path), hint="Add at least one example.")
    decoder = json.JSONDecoder()
    position = _skip(text, 0)
    if text[position] != "[":  # an object holding the list: read it whole (no per-element lines)
        try:
            data = json.loads(text)
        except RecursionError:
            raise StudioError("the JSON is nested too deeply to be a dataset.", where=str(path), hint="Each example should be a flat object.") from None
        except json.JSONDecodeError as err:
            raise StudioError(f"not valid JSON ({err.msg}).", where=f"{path} line {err.lineno}", hint="Fix the JSON syntax there.") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        for index, item in enumerate(data if isinstance(data, list) else [data], start=1):
            yield Record(index, None, item, "")
        return
    # Walk the array element by element so that each example knows its line (json.loads can't say).
    position, line, counted, row = _skip(text, position + 1), 1, 0, 0
    while position < len(text) and text[position] != "]":
        line += text.count("\n", counted, position)
        counted = position
        try:
            item, end = decoder.raw_decode(text, position)
        except RecursionError:
            raise StudioError("the JSON is nested too deeply to be a dataset.", where=f"{path} line {line}", hint="Each example should be a flat object.") from None
        except json.JSONDecodeError as err:
            if row == 0:
                raise StudioError(f"not valid JSON ({err.msg}).", where=f"{path} line {err.lineno}", hint="Fix the JSON syntax there.") from None
            yield Record(row + 1, err.lineno, None, text[position : position + 200], ("(file)", f"broken JSON at line {err.lineno} ({err.msg}); the rest of the file could not be read", "broken JSON"))
            return
        row += 1
        yield Record(row, line, item, "")
        position = _skip(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip(text, position + 1)
        elif position < len(text) and text[position] != "]":
            line += text.count("\n", counted, position)
            yield Record(row + 1, line, None, text[position : position + 200], ("(file)", f"expected ',' or ']' at line {line}; the rest of the file could not be read", "broken JSON"))
            return


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _lines(path: Path) -> Iterator[str]:
    """Decoded lines; invalid bytes become U+FFFD (the reader reports the rows that hold one)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            yield raw.decode("utf-8", "replace")


def _csv(path: Path) -> Iterator[Record]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(_lines(path), delimiter=delimiter)
    try:
        yield from _csv_records(path, reader, delimiter)
    except csv.Error as err:  # e.g. a bare carriage return inside an unquoted field
        raise StudioError(
            f"the file cannot be read as {'TSV' if delimiter == chr(9) else 'CSV'}: {str(err).split(' - ')[0]}.",
            where=f"{path} line {max(reader.line_num, 1)}",
            hint="Put fields that hold line breaks in double quotes, or save the file with plain \\n line endings.",
        ) from None


def _csv_records(path: Path, reader, delimiter: str) -> Iterator[Record]:
    try:
        header = next(reader)
    except StopIteration:
        raise StudioError("the dataset is empty.", where=str(path), hint="Add a header line and at least one example.") from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header) or not all(header):
        raise StudioError("the header line has empty or repeated column names.", where=f"{path} line 1", hint="Give every column a unique name.")
    row, start = 0, reader.line_num + 1
    for cells in reader:
        if not any(c.strip() for c in cells):
            start = reader.line_num + 1
            continue
        row += 1
        raw = delimiter.join(cells)
        error = None
        if "\ufffd" in raw:
            error = ("(line)", "invalid UTF-8; re-save the file as UTF-8", "invalid UTF-8")
        elif len(cells) != len(header):
            error = ("(line)", f"{len(cells)} cells but the header has {len(header)} columns", "wrong column count")
        data = None if error else {name: _cell(value) for name, value in zip(header, cells)}
        yield Record(row, start, data, raw, error)
        start = reader.line_num + 1


def _cell(value: str):
    """A cell that holds JSON (a list of messages, true/false) is parsed; anything else stays text."""
    stripped = value.strip()
    if stripped[:1] in ("[", "{") or stripped in ("true", "false"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return value


def _text(path: Path) -> Iterator[Record]:
    row, start, buffer = 0, None, []
    for number, line in enumerate(_lines(path), start=1):
        if line.strip():
            if start is None:
                start = number
            buffer.append(line)
            continue
        if buffer:
            row += 1
            yield _text_record(row, start, buffer)
            buffer, start = [], None
    if buffer:
        yield _text_record(row + 1, start, buffer)


def _text_record(row: int, start: int, lines: list[str]) -> Record:
    text = "".join(lines).rstrip("\n")
    error = ("(line)", "invalid UTF-8; re-save the file as UTF-8", "invalid UTF-8") if "\ufffd" in text else None
    return Record(row, start, None if error else {"text": text}, text, error)


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise StudioError(f"not a readable Parquet file ({err}).", where=str(path), hint="Re-export it, or use JSONL.") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=2048):
        for item in batch.to_pylist():
            row += 1
            yield Record(row, None, item, "")


def _version(path: Path) -> Iterator[Record]:
    yield from _parquet(path / "data.parquet")


def _datasets(path: Path) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except Exception as err:  # noqa: BLE001
        raise StudioError(f"cannot open the saved dataset ({err}).", where=str(path)) from None
    if isinstance(data, DatasetDict):
        data = data["train"] if "train" in data else next(iter(data.values()))
    for row, item in enumerate(data, start=1):
        yield Record(row, None, item, "")


def raw_text(record: Record) -> str:
    """What to show the user for a row (the line as read, or the row as JSON)."""
    if record.raw:
        return record.raw
    return json.dumps(record.data, ensure_ascii=False, default=str)


def sniff_columns(path: Path, limit: int = 50) -> list[str]:
    """Column names seen in the first rows (for the column-mapping UI)."""
    names: dict[str, None] = {}
    for index, record in enumerate(iter_records(path)):
        if isinstance(record.data, dict):
            names.update(dict.fromkeys(record.data))
        if index >= limit:
            break
    return list(names)


__all__ = ["FILE_TYPES", "LINE_ORIENTED", "Record", "iter_records", "raw_text", "sniff_columns"]
