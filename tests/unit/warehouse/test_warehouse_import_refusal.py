"""An import never half-writes: a file with no good row or too many rejects is refused
and the table stays as it was; a directory loads all its files or none; a GBK file is
named as such and loads with ``encoding``."""

from __future__ import annotations

import pytest

from jingxin.data.warehouse.directory import import_directory
from jingxin.data.warehouse.importer import ImportRefused, import_table
from jingxin.errors import ImportFileError

from warehouse_samples import (
    PLAN_HEADER,
    SUBSCRIBER_HEADER,
    plan_row,
    rows_of,
    subscriber_row,
    write_csv,
)


def _plans(warehouse, tmp_path, *ids: str) -> None:
    path = write_csv(tmp_path / "seed.csv", PLAN_HEADER, [plan_row(i) for i in ids])
    import_table(warehouse, table="plans", path=path, rejects_dir=tmp_path)


@pytest.mark.parametrize("replace", [True, False])
def test_a_file_with_no_good_row_is_refused_and_the_table_kept(warehouse, tmp_path, replace):
    # Given a plans table with two rows, and a file whose every row is bad
    _plans(warehouse, tmp_path, "P1", "P2")
    bad = write_csv(tmp_path / "bad.csv", PLAN_HEADER, [plan_row("P3", tier="x")] * 3)
    # When it is imported (with --replace, which used to empty the table)
    with pytest.raises(ImportRefused, match=r"3 of 3 rows rejected .*no row is good") as caught:
        import_table(warehouse, table="plans", path=bad, rejects_dir=tmp_path / "rj",
                     replace=replace, max_reject_share=1.0)
    # Then the table is as it was, and the one line names the rejects file, which exists
    assert [r[0] for r in rows_of(warehouse, "plans")] == ["P1", "P2"]
    message = str(caught.value)
    assert "\n" not in message and "rejects: " in message
    assert caught.value.report.rejects_path.exists()
    assert str(caught.value.report.rejects_path) in message


def test_rejects_above_the_share_refuse_and_at_the_share_load(warehouse, tmp_path):
    # Given 20 plans, one of them bad (5%)
    rows = [plan_row(f"P{i}") for i in range(19)] + [plan_row("PX", tier="x")]
    path = write_csv(tmp_path / "plans.csv", PLAN_HEADER, rows)
    # When the allowed share is below 5% / Then refused, nothing created
    with pytest.raises(ImportRefused, match=r"1 of 20 rows rejected \(5.0%, more than the "
                                            r"4.0% allowed\).*--max-rejects"):
        import_table(warehouse, table="plans", path=path, rejects_dir=tmp_path,
                     max_reject_share=0.04)
    assert not warehouse.has_table("plans")
    # When it is 5% (the default) / Then the 19 good rows load
    report = import_table(warehouse, table="plans", path=path, rejects_dir=tmp_path)
    assert (report.rows_loaded, report.rows_rejected, report.rows_in_table) == (19, 1, 19)


def test_a_directory_with_one_broken_file_loads_nothing(warehouse, tmp_path):
    # Given a table already loaded, and a directory of good plans but broken subscribers
    _plans(warehouse, tmp_path, "P0")
    out = tmp_path / "synth"
    out.mkdir()
    write_csv(out / "plans.csv", PLAN_HEADER, [plan_row("P1"), plan_row("P2")])
    write_csv(out / "subscribers.csv", SUBSCRIBER_HEADER,
              [subscriber_row(1, "010-12345678"), subscriber_row(2, "not a number")])
    for replace in (False, True):
        # When the directory is imported
        with pytest.raises(ImportRefused, match=r"nothing from .*synth was loaded "
                                                r"\(plans rolled back too\)"):
            import_directory(warehouse, out, rejects_dir=tmp_path / "rj", replace=replace)
        # Then plans, though good and first, are exactly as before; no subscribers table
        assert [r[0] for r in rows_of(warehouse, "plans")] == ["P0"]
        assert not warehouse.has_table("subscribers")


def test_a_directory_of_good_files_loads_them_all(warehouse, tmp_path):
    out = tmp_path / "synth"
    out.mkdir()
    write_csv(out / "plans.csv", PLAN_HEADER, [plan_row("P1")])
    write_csv(out / "subscribers.csv", SUBSCRIBER_HEADER, [subscriber_row(1)])
    result = import_directory(warehouse, out, rejects_dir=tmp_path)
    assert [(r.table, r.rows_in_table) for r in result.reports] == [("plans", 1),
                                                                  ("subscribers", 1)]


def _gbk_subscribers(tmp_path):
    path = tmp_path / "gbk.csv"
    rows = [SUBSCRIBER_HEADER, subscriber_row(1, region="海淀区"), subscriber_row(2, "13912345678",
                                                                          region="朝阳区")]
    path.write_bytes("\r\n".join(",".join(r) for r in rows).encode("gbk") + b"\r\n")
    return path


def test_a_gbk_csv_is_named_and_loads_with_its_encoding(warehouse, tmp_path):
    path = _gbk_subscribers(tmp_path)
    # When imported as it is / Then one line says what it is and how to fix it
    with pytest.raises(ImportFileError) as caught:
        import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path)
    assert str(caught.value) == (f"{path}: the CSV file is not UTF-8 (looks like GBK/GB18030?)"
                                 ": re-save it as UTF-8 or pass --encoding gbk")
    # When its encoding is given / Then the Chinese values arrive intact
    report = import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path,
                          encoding="gbk")
    assert report.rows_loaded == 2
    got = warehouse.con.con.execute("SELECT region FROM subscribers ORDER BY 1").fetchall()
    assert sorted(r[0] for r in got) == sorted(["海淀区", "朝阳区"])


def test_gbk_past_the_sniffed_head_is_still_named(warehouse, tmp_path):
    # Given a UTF-8-looking head (over 256 KB of ASCII rows) and a GBK row at the end
    rows = [subscriber_row(i, f"138{i:08d}") for i in range(1, 4000)]
    rows.append(subscriber_row(9999, "13912345678", region="海淀区"))
    path = tmp_path / "late.csv"
    body = "\n".join(",".join(r) for r in [SUBSCRIBER_HEADER, *rows]) + "\n"
    path.write_bytes(body.encode("gbk"))
    assert path.stat().st_size > 256 * 1024
    with pytest.raises(ImportFileError, match="not UTF-8 .*--encoding gbk"):
        import_table(warehouse, table="subscribers", path=path, rejects_dir=tmp_path)
    with pytest.raises(ImportFileError, match="unknown encoding"):
        import_table(warehouse, table="subscribers", path=path, encoding="klingon")
