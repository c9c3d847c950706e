"""Importing CSV files: good rows load, every bad row lands in the rejects file with its
physical line, field and reason, and the whole file fails cleanly when it is unusable."""

from __future__ import annotations

from pathlib import Path

import pytest

from functools import partial

from jingxin.data.warehouse import importer as _importer

# These tests read the rejects of small files, where one bad row is a large share: the
# refusal of such files is tested in test_warehouse_import_refusal.py.
import_table = partial(_importer.import_table, max_reject_share=1.0)
from jingxin.errors import ImportFileError, InputError

from warehouse_samples import (
    PLAN_HEADER,
    SUBSCRIBER_HEADER,
    plan_row,
    read_rejects,
    rows_of,
    subscriber_row,
    write_csv,
)


def test_good_csv_loads_every_row_with_msisdn_and_carrier_derived(warehouse, tmp_path):
    # Given a clean subscribers file with numbers in several spellings
    path = write_csv(tmp_path / "subs.csv", SUBSCRIBER_HEADER, [
        subscriber_row(1, "13812345678"),
        subscriber_row(2, "+86 186-1234-5678"),
        subscriber_row(3, "008619912345678"),
    ])
    # When imported
    report = import_table(warehouse, table="subscribers", path=path,
                          rejects_dir=tmp_path / "rejects")
    # Then every row is in the table, normalised, and no rejects file was written
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 3, 0)
    assert report.rejects_path is None and report.problems == {}
    got = warehouse.con.con.execute(
        "SELECT subscriber_id, msisdn, carrier FROM subscribers ORDER BY 1").fetchall()
    assert got == [(1, "+8613812345678", "china_mobile"),
                   (2, "+8618612345678", "china_unicom"),
                   (3, "+8619912345678", "china_telecom")]


BAD_ROWS = [
    # (row changes, field, reason fragment)
    ({"star_level": "three"}, "star_level", "not a valid integer"),
    ({"star_level": "2.5"}, "star_level", "not a valid integer"),
    ({"star_level": "300"}, "star_level", "not a valid integer"),
    ({"entry_date": "2021-02-30"}, "entry_date", "not a valid date"),
    ({"app_user": "maybe"}, "app_user", "not a valid boolean"),
    ({"msisdn": "12345"}, "msisdn", "invalid msisdn: too short"),
    ({"msisdn": "01012345678"}, "msisdn", "invalid msisdn: not mobile"),
    ({"msisdn": "+14155552671"}, "msisdn", "invalid msisdn: foreign"),
    ({"msisdn": "call me"}, "msisdn", "invalid msisdn: not a number"),
    ({"msisdn": ""}, "msisdn", "missing value"),
    ({"region": ""}, "region", "missing value"),
    ({"payment": "gold"}, "payment", "not one of: prepaid, postpaid"),
    ({"status": "Active"}, "status", "not one of"),
    ({"gender": "X"}, "gender", "not one of: F, M"),
]


@pytest.mark.parametrize(("changes", "field", "reason"), BAD_ROWS)
def test_a_bad_row_is_rejected_with_line_field_reason_and_its_values(
        warehouse, tmp_path, changes, field, reason):
    # Given a good row, a bad one on line 3 and another good row
    bad = subscriber_row(2, **{"msisdn": "13912345678", **changes})
    path = write_csv(tmp_path / "subs.csv", SUBSCRIBER_HEADER,
                     [subscriber_row(1), bad, subscriber_row(3, "13712345678")])
    # When imported
    report = import_table(warehouse, table="subscribers", path=path,
                          rejects_dir=tmp_path / "rejects")
    # Then the good rows load and the bad one is in the rejects file, as it was written
    assert (report.rows_loaded, report.rows_rejected) == (2, 1)
    assert [r[0] for r in rows_of(warehouse, "subscribers")] == [1, 3]
    rejects = read_rejects(report.rejects_path)
    assert [(r["line"], r["field"]) for r in rejects] == [("3", field)]
    assert reason in rejects[0]["reason"]
    assert [rejects[0][name] for name in SUBSCRIBER_HEADER] == bad
    assert sum(report.problems.values()) == 1


def test_duplicate_keys_keep_the_first_copy_and_name_its_line(warehouse, tmp_path):
    path = write_csv(tmp_path / "subs.csv", SUBSCRIBER_HEADER, [
        subscriber_row(1, "13812345678"),
        subscriber_row(2, "13812345679"),
        subscriber_row(1, "13812345670"),  # line 4 repeats line 2's key
    ])
    report = import_table(warehouse, table="subscribers", path=path,
                          rejects_dir=tmp_path / "rejects")
    assert report.rows_loaded == 2
    [reject] = read_rejects(report.rejects_path)
    assert (reject["line"], reject["field"]) == ("4", "subscriber_id")
    assert reject["reason"] == "duplicate key in file (first at line 2)"
    assert rows_of(warehouse, "subscribers")[0][1] == "+8613812345678"


def test_a_bad_first_copy_does_not_block_a_good_second(warehouse, tmp_path):
    path = write_csv(tmp_path / "subs.csv", SUBSCRIBER_HEADER, [
        subscriber_row(1, "bad number"), subscriber_row(1, "13812345678")])
    report = import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path)
    assert (report.rows_loaded, report.rows_rejected) == (1, 1)
    assert rows_of(warehouse, "subscribers")[0][1] == "+8613812345678"


def test_appending_keys_already_in_the_table_rejects_them(warehouse, tmp_path):
    first = write_csv(tmp_path / "a.csv", SUBSCRIBER_HEADER, [subscriber_row(1)])
    again = write_csv(tmp_path / "b.csv", SUBSCRIBER_HEADER,
                      [subscriber_row(1), subscriber_row(2, "13912345678")])
    import_table(warehouse, table="subscribers", path=first, rejects_dir=tmp_path)
    report = import_table(warehouse, table="subscribers", path=again, rejects_dir=tmp_path)
    assert report.problems == {"subscriber_id: key already in the table": 1}
    assert report.rows_in_table == 2


def test_replace_swaps_the_rows(warehouse, tmp_path):
    import_table(warehouse, table="plans", rejects_dir=tmp_path,
                 path=write_csv(tmp_path / "a.csv", PLAN_HEADER, [plan_row("P1")]))
    report = import_table(warehouse, table="plans", rejects_dir=tmp_path, replace=True,
                          path=write_csv(tmp_path / "b.csv", PLAN_HEADER,
                                         [plan_row("P2"), plan_row("P3")]))
    assert report.mode == "replace" and report.rows_in_table == 2
    assert [r[0] for r in rows_of(warehouse, "plans")] == ["P2", "P3"]


def test_multi_line_values_and_short_records_get_their_physical_lines(warehouse, tmp_path):
    # Given a quoted value spanning lines 3-4 and a record with too few fields on line 5
    path = tmp_path / "subs.csv"
    good = ",".join(subscriber_row(1))
    split = ",".join(subscriber_row(2, "13912345678", status='"act\nive"'))
    short = "3,13712345678,P1"
    path.write_text("\n".join([",".join(SUBSCRIBER_HEADER), good, split, short, ""]),
                    encoding="utf-8")
    report = import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path)
    rejects = read_rejects(report.rejects_path)
    assert [(r["line"], r["field"]) for r in rejects] == [("3", "status"), ("5", "")]
    assert rejects[1]["reason"] == f"expected {len(SUBSCRIBER_HEADER)} fields, got 3"
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 1, 2)


def test_extra_columns_are_reported_and_absent_nullable_ones_load_as_null(warehouse,
                                                                          tmp_path):
    header = [h for h in SUBSCRIBER_HEADER if h != "handset_model"] + ["note"]
    row = [v for h, v in zip(SUBSCRIBER_HEADER, subscriber_row(1), strict=True)
           if h != "handset_model"] + ["vip"]
    report = import_table(warehouse, table="subscribers", rejects_dir=tmp_path,
                          path=write_csv(tmp_path / "subs.csv", header, [row]))
    assert report.extra_columns == ("note",)
    assert report.absent_columns == ("handset_model",)
    assert report.rows_loaded == 1


def test_missing_required_columns_fail_the_file_naming_them(warehouse, tmp_path):
    header = [h for h in SUBSCRIBER_HEADER if h not in ("msisdn", "region")]
    path = write_csv(tmp_path / "subs.csv", header, [["1"] * len(header)])
    with pytest.raises(ImportFileError, match=r"subs\.csv: missing column\(s\) msisdn, region"):
        import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path)
    assert not warehouse.has_table("subscribers")


UNUSABLE = [
    # (file name, content, message fragment)
    ("empty.csv", b"", "the file is empty"),
    ("header.csv", (",".join(PLAN_HEADER) + "\n").encode(), "no data rows"),
    ("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
     "neither a Parquet file nor UTF-8 CSV"),
    ("noise.csv", bytes([0xff, 0xfe, 0x00, 0x81]) * 50, "neither a Parquet file"),
    ("fake.parquet", b"PAR1 not really", "not a readable Parquet file"),
    ("dupe.csv", b"plan_id,plan_id\nP1,P2\n", "column 'plan_id' appears twice"),
]


@pytest.mark.parametrize(("name", "content", "message"), UNUSABLE)
def test_unusable_files_fail_cleanly_and_leave_the_table_untouched(
        warehouse, tmp_path, name, content, message):
    # Given a table with a row in it
    import_table(warehouse, table="plans", rejects_dir=tmp_path,
                 path=write_csv(tmp_path / "ok.csv", PLAN_HEADER, [plan_row("P1")]))
    path = tmp_path / name
    path.write_bytes(content)
    # When an unusable file is imported, with --replace even
    with pytest.raises(ImportFileError, match=message) as caught:
        import_table(warehouse, table="plans", path=path, rejects_dir=tmp_path, replace=True)
    # Then the error names the file and the table still holds its row
    assert name in str(caught.value)
    assert [r[0] for r in rows_of(warehouse, "plans")] == ["P1"]


def test_a_missing_file_and_an_unknown_table_are_input_errors(warehouse, tmp_path):
    with pytest.raises(ImportFileError, match="no such file"):
        import_table(warehouse, table="plans", path=tmp_path / "nope.csv")
    path = write_csv(tmp_path / "plans.csv", PLAN_HEADER, [plan_row()])
    with pytest.raises(InputError, match="unknown warehouse table 'plan'; known tables: plans"):
        import_table(warehouse, table="plan", path=path)


def test_excel_bom_and_crlf_lines_are_read(warehouse, tmp_path):
    path = tmp_path / "plans.csv"
    text = ",".join(PLAN_HEADER) + "\r\n" + ",".join(plan_row("P1")) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    report = import_table(warehouse, table="plans", path=path, rejects_dir=tmp_path)
    assert report.rows_loaded == 1


def test_rejects_go_under_the_given_directory(warehouse, tmp_path):
    path = write_csv(tmp_path / "p.csv", PLAN_HEADER, [plan_row(tier="x"), plan_row("P2")])
    report = import_table(warehouse, table="plans", path=path,
                          rejects_dir=tmp_path / "deep" / "rejects")
    assert report.rejects_path.parent == tmp_path / "deep" / "rejects"
    assert report.rejects_path.name.startswith("plans-p-")
    assert Path(report.rejects_path).read_text().startswith("line,field,reason,plan_id")
