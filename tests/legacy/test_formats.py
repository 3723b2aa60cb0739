"""Reading legacy files: the shape is detected, large files are streamed, and a broken one
is placed at the line and column Python's own JSON parser names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snipix.legacy.formats import LegacyFileError, Section, Shape, open_legacy
from tests.legacy.samples import export_file, store_file, write


def place(text: str, position: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a character offset."""
    line_start = text.rfind("\n", 0, position) + 1
    return text.count("\n", 0, position) + 1, position - line_start + 1


@pytest.mark.parametrize("stream_above", [1 << 30, 0], ids=["parsed", "streamed"])
def test_both_shapes_are_detected_and_read_record_by_record(
    tmp_path: Path, stream_above: int
) -> None:
    """The export file and the keyed store give the same records parsed or streamed."""
    export = open_legacy(
        write(tmp_path / "e.json", export_file(transcript_words=50)), stream_above=stream_above
    )
    assert (export.shape, export.streamed) == (Shape.EXPORT, stream_above == 0)
    ids = [value["_id"] for _i, _k, value in export.records(Section.PROJECTS)]
    assert ids == [project["_id"] for project in export_file(transcript_words=50)["projects"]]
    assert len(list(export.records(Section.TIMELINES))) == 3
    store = open_legacy(write(tmp_path / "s.json", store_file(3)), stream_above=stream_above)
    assert store.shape is Shape.STORE
    keys = [key for _i, key, _value in store.records(Section.STORE)]
    assert keys == list(store_file(3))
    floats = [value["duration"] for _i, _k, value in store.records(Section.STORE)]
    assert floats == [600.0, 600.0, 600.0]
    assert all(type(value) is float for value in floats)


@pytest.mark.parametrize("stream_above", [1 << 30, 0], ids=["parsed", "streamed"])
def test_an_error_far_into_a_large_file_is_placed_exactly(
    tmp_path: Path, stream_above: int
) -> None:
    """Past several read chunks, on a line with non-ASCII names, the error is placed at the
    offending character, by line and column in characters (as an editor counts them)."""
    data = store_file(40, transcript_words=60)
    data["project_30_1757329682"]["name"] = "Écoute — café ☕"
    text = json.dumps(data, indent=1, ensure_ascii=False)
    marker = '"name": "Écoute — café ☕"'
    broken = text.replace(marker, marker + " 7", 1)
    assert text.index(marker) > 3 * 65_536
    path = tmp_path / "broken.json"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(LegacyFileError) as caught:
        open_legacy(path, stream_above=stream_above)
    offending = broken.index(marker) + len(marker) + 1
    assert broken[offending] == "7"
    assert (caught.value.line, caught.value.column) == place(broken, offending)
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(broken)
    assert caught.value.line == reference.value.lineno


def test_a_file_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    """An array at the top is not a legacy file, parsed or streamed."""
    path = write(tmp_path / "list.json", [{"_id": "a"}])
    for stream_above in (1 << 30, 0):
        with pytest.raises(LegacyFileError, match="holds a JSON array, not an object"):
            open_legacy(path, stream_above=stream_above)
