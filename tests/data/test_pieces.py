"""Large gzipped tables are staged chunk by chunk: the same table as a whole read, cuts only at
record boundaries, a bounded number of pieces on disk, errors on the file's own line."""

from __future__ import annotations

import csv
import gzip
import io
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from safellm.data import mimic
from safellm.data.build import build_dataset
from safellm.data.pieces import gz_pieces, record_cut
from safellm.errors import DataFormatError


def test_record_cut_skips_newlines_inside_quotes() -> None:
    buf = b'1,"a\nb"\n2,"c\nd'
    assert record_cut(buf) == len(b'1,"a\nb"\n')  # not after the "c newline: inside quotes
    assert record_cut(b'1,"x ""quoted"" y"\n2,') == len(b'1,"x ""quoted"" y"\n')
    assert record_cut(b'1,"never closed\nmore\n') == 0
    assert record_cut(b"no newline at all") == 0


def _rows(n: int) -> list[list[str]]:
    rows = []
    for i in range(n):
        text = f'line {i}\nsecond "part" of {i}' if i % 7 == 0 else f"plain {i}"
        rows.append([str(i), str(i % 13), text])
    return rows


def _gz(path: Path, rows: list[list[str]]) -> bytes:
    raw = io.StringIO()
    w = csv.writer(raw, lineterminator="\n")
    w.writerow(["ROW_ID", "SUBJECT_ID", "TEXT"])
    w.writerows(rows)
    data = raw.getvalue().encode()
    path.write_bytes(gzip.compress(data))
    return data


def test_pieces_rebuild_the_file_and_never_cut_a_quoted_field(tmp_path: Path) -> None:
    rows = _rows(3000)
    data = _gz(tmp_path / "T.csv.gz", rows)
    header, body = data.split(b"\n", 1)
    got, lines = [], []
    for piece in gz_pieces(tmp_path / "T.csv.gz", tmp_path / "s", piece_bytes=4096):
        text = piece.path.read_bytes()
        assert text.startswith(header + b"\n")
        part = text[len(header) + 1 :]
        # each piece parses on its own into whole records
        parsed = list(csv.reader(io.StringIO(part.decode())))
        assert all(len(r) == 3 for r in parsed)
        got.append(part)
        lines.append(piece.lines_before)
    assert len(got) > 10
    assert b"".join(got) == body
    # lines_before counts the file's physical lines before each piece (header included)
    assert lines[0] == 1
    assert lines[1] == 1 + got[0].count(b"\n")
    assert list((tmp_path / "s").iterdir()) == []


def test_one_piece_on_disk_at_a_time_and_three_buffers_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safellm.data import pieces as P

    made: list[int] = []
    real = bytearray

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object) -> None:
            super().__init__(*args)
            if args and isinstance(args[0], int) and args[0] == 2048:
                made.append(1)

    monkeypatch.setattr(P, "bytearray", Counting, raising=False)
    _gz(tmp_path / "T.csv.gz", _rows(5000))
    seen = 0
    n = 0
    for _piece in gz_pieces(tmp_path / "T.csv.gz", tmp_path / "s", piece_bytes=2048):
        # give the producer time to run ahead as far as it can
        threading.Event().wait(0.01)
        seen = max(seen, len(list((tmp_path / "s").glob("piece-*.csv"))))
        n += 1
    assert seen == 1
    assert n > 20
    assert len(made) == 3  # the pooled buffers, reused for every chunk


def test_header_only_file_gives_one_empty_piece(tmp_path: Path) -> None:
    (tmp_path / "T.csv.gz").write_bytes(gzip.compress(b"ROW_ID,SUBJECT_ID\n"))
    pieces = [p.path.read_bytes() for p in gz_pieces(tmp_path / "T.csv.gz", tmp_path / "s")]
    assert pieces == [b"ROW_ID,SUBJECT_ID\n"]


def test_stopping_early_leaves_no_piece(tmp_path: Path) -> None:
    _gz(tmp_path / "T.csv.gz", _rows(5000))
    it = gz_pieces(tmp_path / "T.csv.gz", tmp_path / "s", piece_bytes=2048)
    next(it)
    it.close()
    assert list((tmp_path / "s").iterdir()) == []


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    _gz(tmp_path / "T.csv.gz", _rows(20000))
    data = (tmp_path / "T.csv.gz").read_bytes()
    (tmp_path / "T.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"T\.csv\.gz: cannot decompress"):
        for _ in gz_pieces(tmp_path / "T.csv.gz", tmp_path / "s", piece_bytes=4096):
            pass
    assert list((tmp_path / "s").iterdir()) == []


def _staged(folder: mimic.MimicFolder, name: str, inflate: mimic.Inflate | None) -> pd.DataFrame:
    con = mimic.connect()
    mimic.create_views(con, folder)
    mimic.stage_table(con, folder, name, inflate)
    df = con.execute(f"SELECT * FROM {name.lower()}").df()
    con.close()
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def test_labevents_staged_in_many_pieces_equals_the_whole_read(
    mimic_demo_dir: Path, tmp_path: Path
) -> None:
    folder = mimic.open_mimic(mimic_demo_dir)
    whole = _staged(folder, "LABEVENTS", None)
    scratch = tmp_path / "scratch"
    pieces = _staged(folder, "LABEVENTS", mimic.Inflate(scratch, 0, piece_bytes=256 * 1024))
    assert len(whole) > 10_000
    pd.testing.assert_frame_equal(whole, pieces)
    assert not scratch.exists() or list(scratch.iterdir()) == []


def test_values_arrow_refuses_are_read_by_duckdb_as_in_a_whole_read(
    demo_copy: Path, tmp_path: Path
) -> None:
    # Arrow's CSV reader parses the chunks; it refuses some spellings DuckDB takes ("+10120" as an
    # integer, a UTC offset or a one-digit hour in a time). Those chunks go to DuckDB, so the
    # staged table is the same as DuckDB's whole read; the other chunks still come from Arrow.
    f = demo_copy / "LABEVENTS.csv.gz"
    lines = gzip.decompress(f.read_bytes()).split(b"\n")
    for bad, col, edit in [
        (30_001, 1, lambda v: b"+" + v),  # subject_id
        (50_001, 4, lambda v: v + b"+00"),  # charttime with a UTC offset
        (70_001, 4, lambda v: v[:11] + v[12:] if v[11:12] == b"0" else v),  # one-digit hour
    ]:
        fields = lines[bad - 1].split(b",")
        fields[col] = edit(fields[col])
        lines[bad - 1] = b",".join(fields)
    f.write_bytes(gzip.compress(b"\n".join(lines)))
    folder = mimic.open_mimic(demo_copy)
    whole = _staged(folder, "LABEVENTS", None)
    calls = {"arrow": 0, "refused": 0}
    real = mimic._arrow_chunk

    def counting(*args: object) -> object:
        out = real(*args)  # type: ignore[arg-type]
        calls["arrow" if out is not None else "refused"] += 1
        return out

    scratch = tmp_path / "scratch"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mimic, "_arrow_chunk", counting)
        pieces = _staged(folder, "LABEVENTS", mimic.Inflate(scratch, 0, piece_bytes=512 * 1024))
    pd.testing.assert_frame_equal(whole, pieces)
    assert calls["refused"] >= 2 and calls["arrow"] >= 5
    assert list(scratch.iterdir()) == []


def test_quoted_newlines_cut_across_arrow_blocks_still_parse_right(
    demo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrow cuts a chunk into blocks at newlines; a quoted value holding a newline followed by
    # what looks like a row must not come out as two rows
    f = demo_copy / "PRESCRIPTIONS.csv.gz"
    df = pd.read_csv(f, dtype=str, keep_default_na=False)
    drug = next(c for c in df.columns if c.lower() == "drug")
    subject = next(c for c in df.columns if c.lower() == "subject_id")
    every = df.index % 3 == 0
    df.loc[every, drug] = df.loc[every, drug] + "\n" + df.loc[every, subject] + ",x"
    raw = io.StringIO()
    df.to_csv(raw, index=False, lineterminator="\n")  # quotes only where needed
    f.write_bytes(gzip.compress(raw.getvalue().encode()))
    folder = mimic.open_mimic(demo_copy)
    whole = _staged(folder, "PRESCRIPTIONS", None)
    assert whole["drug"].str.contains("\n").sum() > 1000
    monkeypatch.setattr(mimic, "ARROW_BLOCK_BYTES", 700)
    refused = []
    real = mimic._arrow_chunk
    monkeypatch.setattr(
        mimic, "_arrow_chunk", lambda *a: (lambda out: refused.append(out is None) or out)(real(*a))
    )
    pieces = _staged(folder, "PRESCRIPTIONS", mimic.Inflate(tmp_path / "s", 0, 64 * 1024))
    pd.testing.assert_frame_equal(whole, pieces)
    assert len(refused) > 20 and not all(refused)  # Arrow parsed the chunks


def test_build_in_small_pieces_gives_identical_tables(
    mimic_demo_dir: Path, demo_build, tmp_path: Path
) -> None:
    res = build_dataset(
        mimic_demo_dir,
        tmp_path / "data",
        scratch=tmp_path / "scratch",
        inflate_above=0,
        piece_bytes=64 * 1024,
    )
    assert res.report == demo_build.report
    for task in res.features:
        a = pd.read_parquet(demo_build.out_dir / f"{task}.parquet")
        b = pd.read_parquet(res.out_dir / f"{task}.parquet")
        pd.testing.assert_frame_equal(a, b)


def test_bad_value_deep_in_a_piece_reports_the_files_line(demo_copy: Path, tmp_path: Path) -> None:
    f = demo_copy / "LABEVENTS.csv.gz"
    lines = gzip.decompress(f.read_bytes()).split(b"\n")
    bad = 20_001  # 1-based line of the file (the header is line 1)
    fields = lines[bad - 1].split(b",")
    fields[1] = b"notanumber"  # subject_id
    lines[bad - 1] = b",".join(fields)
    f.write_bytes(gzip.compress(b"\n".join(lines)))
    folder = mimic.open_mimic(demo_copy)
    con = mimic.connect()
    mimic.create_views(con, folder)
    inflate = mimic.Inflate(tmp_path / "scratch", 0, piece_bytes=128 * 1024)
    with pytest.raises(
        DataFormatError, match=r"LABEVENTS\.csv\.gz: .*line 20,001: column subject_id"
    ):
        mimic.stage_table(con, folder, "LABEVENTS", inflate)
    assert list((tmp_path / "scratch").iterdir()) == []
    # the same error, read whole, names the same line
    with pytest.raises(DataFormatError, match=r"line 20,001: column subject_id"):
        mimic.stage_table(con, folder, "LABEVENTS", None)


def test_scratch_needs_room_for_pieces_not_whole_tables(
    mimic_demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = mimic.open_mimic(mimic_demo_dir)
    roomy = tmp_path / "shm"
    roomy.mkdir()
    free = {"bytes": 0}

    class Usage:
        def __init__(self, free: int) -> None:
            self.free = free

    monkeypatch.setattr(mimic.shutil, "disk_usage", lambda _p: Usage(free["bytes"]))
    piece = 8 * 1024 * 1024
    # staged tables only: two at a time, a piece each on disk, + 1 GiB
    need = 2 * piece + 1024**3
    small = {n: p for n, p in folder.files.items() if mimic.TABLES[n].staged}
    folder.files = small
    free["bytes"] = need
    assert (
        mimic.scratch_dir(folder, tmp_path / "f", shm=roomy, above_bytes=0, piece_bytes=piece)
        == roomy
    )
    free["bytes"] = need - 1
    assert (
        mimic.scratch_dir(folder, tmp_path / "f", shm=roomy, above_bytes=0, piece_bytes=piece)
        == tmp_path / "f"
    )


def test_duckdb_line_numbers_count_the_header(tmp_path: Path) -> None:
    # read_error's offset arithmetic relies on it
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n3,x\n")
    con = duckdb.connect()
    with pytest.raises(duckdb.Error, match="Line: 3"):
        con.execute(
            f"SELECT * FROM read_csv('{p}', columns={{'a': 'BIGINT', 'b': 'BIGINT'}}, "
            "header=true, auto_detect=false)"
        ).fetchall()
