//! `smc-analyze export --parquet` on the lab's real recordings (`fixtures/`):
//! the Parquet files are read back with the `parquet` crate's own reader and
//! every row and column is compared with the CSV export of the same input
//! (exact equality after converting the CSV text to the Parquet column's
//! type); the Parquet types, nullability and row-group bound are checked
//! against the file's own metadata, so are the column statistics (min, max,
//! null count of every chunk); a synthetic two-host recording gives many row
//! groups, gaps and nulls; DuckDB (when its Python module is installed)
//! reads the same files; an unwritable directory is one error line.
//!
//! The `parquet` crate is a dev-dependency only (Apache-2.0): smc-analyze
//! writes Parquet with its own writer (src/export/parquet.rs).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;
use parquet::record::Field;

mod common;
use common::{fixture, run, text};
use smc_analyze::synth::{write_recording, SimConn, SimMode, Synth};
use smctrace_format::event::EventKind;

fn tmpdir(tag: &str) -> PathBuf {
    common::tmpdir("parquet", tag)
}

/// The type of one Parquet column, from the file's metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Int,
    Text,
    Bool,
}

struct Table {
    names: Vec<String>,
    types: Vec<Ty>,
    optional: Vec<bool>,
    row_groups: Vec<i64>,
    rows: Vec<Vec<Field>>,
    /// Per row group, per column.
    stats: Vec<Vec<Option<Statistics>>>,
    codecs: Vec<String>,
}

fn read_parquet(path: &Path) -> Table {
    let r = SerializedFileReader::new(
        File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: not a Parquet file: {e}", path.display()));
    let md = r.metadata();
    let mut t = Table {
        names: vec![],
        types: vec![],
        optional: vec![],
        row_groups: vec![],
        rows: vec![],
        stats: vec![],
        codecs: vec![],
    };
    for c in md.file_metadata().schema_descr().columns() {
        t.names.push(c.name().to_string());
        t.types
            .push(match (c.physical_type(), c.logical_type_ref()) {
                (Physical::INT64, None) => Ty::Int,
                (Physical::BYTE_ARRAY, Some(LogicalType::String)) => Ty::Text,
                (Physical::BOOLEAN, None) => Ty::Bool,
                (p, l) => panic!(
                    "{}: column {}: unexpected type {p:?} {l:?}",
                    path.display(),
                    c.name()
                ),
            });
        t.optional
            .push(match c.self_type().get_basic_info().repetition() {
                Repetition::OPTIONAL => true,
                Repetition::REQUIRED => false,
                x => panic!("{}: column {}: repetition {x:?}", path.display(), c.name()),
            });
    }
    t.row_groups = (0..md.num_row_groups())
        .map(|i| md.row_group(i).num_rows())
        .collect();
    t.stats = (0..md.num_row_groups())
        .map(|i| {
            md.row_group(i)
                .columns()
                .iter()
                .map(|c| c.statistics().cloned())
                .collect()
        })
        .collect();
    t.codecs = (0..md.num_row_groups())
        .flat_map(|i| {
            md.row_group(i)
                .columns()
                .iter()
                .map(|c| format!("{:?}", c.compression()))
                .collect::<Vec<_>>()
        })
        .collect();
    for row in r.get_row_iter(None).unwrap() {
        let row = row.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cols: Vec<(&String, &Field)> = row.get_column_iter().collect();
        assert_eq!(
            cols.iter().map(|c| c.0).collect::<Vec<_>>(),
            t.names.iter().collect::<Vec<_>>()
        );
        t.rows.push(cols.into_iter().map(|c| c.1.clone()).collect());
    }
    t
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let head = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    (head, rows)
}

/// The CSV cell converted to the Parquet column's type: an empty cell is
/// null in an OPTIONAL column (and only there an empty text is null),
/// `fallback_code` is hex in CSV.
fn expected(name: &str, ty: Ty, optional: bool, cell: &str) -> Field {
    if cell.is_empty() && (optional || ty != Ty::Text) {
        assert!(
            optional,
            "column {name}: empty CSV cell in a REQUIRED Parquet column"
        );
        return Field::Null;
    }
    match ty {
        Ty::Int if name == "fallback_code" => Field::Long(
            i64::from_str_radix(
                cell.strip_prefix("0x")
                    .unwrap_or_else(|| panic!("{name}: not hex: {cell:?}")),
                16,
            )
            .unwrap(),
        ),
        Ty::Int => Field::Long(
            cell.parse()
                .unwrap_or_else(|e| panic!("{name}: {cell:?}: {e}")),
        ),
        Ty::Bool => Field::Bool(
            cell.parse()
                .unwrap_or_else(|e| panic!("{name}: {cell:?}: {e}")),
        ),
        Ty::Text => Field::Str(cell.to_string()),
    }
}

/// Compare `dir_pq/T.parquet` with `dir_csv/T.csv` cell by cell; returns
/// the Parquet table (for further checks).
fn compare(dir_csv: &Path, dir_pq: &Path, table: &str) -> Table {
    let (head, rows) = read_csv(&dir_csv.join(format!("{table}.csv")));
    let t = read_parquet(&dir_pq.join(format!("{table}.parquet")));
    assert_eq!(
        t.names, head,
        "{table}: Parquet columns differ from the CSV header"
    );
    assert_eq!(t.rows.len(), rows.len(), "{table}: row count");
    assert_eq!(
        t.row_groups.iter().sum::<i64>() as usize,
        rows.len(),
        "{table}: row groups do not add up"
    );
    for (i, (pr, cr)) in t.rows.iter().zip(&rows).enumerate() {
        for (j, (p, c)) in pr.iter().zip(cr).enumerate() {
            let want = expected(&head[j], t.types[j], t.optional[j], c);
            assert_eq!(
                p, &want,
                "{table} row {i} column {}: parquet {p:?}, csv {c:?}",
                head[j]
            );
        }
    }
    check_statistics(table, &t);
    t
}

/// Every chunk's statistics against the values of its row group: the null
/// count always, min and max for integers and booleans, for text when both
/// are at most 64 bytes (the writer's limit).
fn check_statistics(table: &str, t: &Table) {
    let mut start = 0;
    for (g, &n) in t.row_groups.iter().enumerate() {
        let rows = &t.rows[start..start + n as usize];
        start += n as usize;
        for (j, name) in t.names.iter().enumerate() {
            let st = t.stats[g][j]
                .as_ref()
                .unwrap_or_else(|| panic!("{table} rg {g} {name}: no statistics"));
            let vals: Vec<&Field> = rows
                .iter()
                .map(|r| &r[j])
                .filter(|f| **f != Field::Null)
                .collect();
            assert_eq!(
                st.null_count_opt(),
                Some((rows.len() - vals.len()) as u64),
                "{table} rg {g} {name}: null count"
            );
            let ctx = format!("{table} rg {g} {name}");
            match st {
                Statistics::Int64(s) => {
                    let v: Vec<i64> = vals
                        .iter()
                        .map(|f| {
                            if let Field::Long(x) = f {
                                *x
                            } else {
                                panic!("{ctx}: {f:?}")
                            }
                        })
                        .collect();
                    assert_eq!(
                        (s.min_opt(), s.max_opt()),
                        (v.iter().min(), v.iter().max()),
                        "{ctx}"
                    );
                }
                Statistics::Boolean(s) => {
                    let v: Vec<bool> = vals.iter().map(|f| **f == Field::Bool(true)).collect();
                    assert_eq!(
                        (s.min_opt(), s.max_opt()),
                        (v.iter().min(), v.iter().max()),
                        "{ctx}"
                    );
                }
                Statistics::ByteArray(s) => {
                    let v: Vec<&[u8]> = vals
                        .iter()
                        .map(|f| {
                            if let Field::Str(x) = f {
                                x.as_bytes()
                            } else {
                                panic!("{ctx}: {f:?}")
                            }
                        })
                        .collect();
                    let (min, max) = (v.iter().min().copied(), v.iter().max().copied());
                    if min.is_some_and(|m| m.len() > 64) || max.is_some_and(|m| m.len() > 64) {
                        assert!(s.min_opt().is_none() && s.max_opt().is_none(), "{ctx}");
                    } else {
                        assert_eq!(
                            (s.min_opt().map(|x| x.data()), s.max_opt().map(|x| x.data())),
                            (min, max),
                            "{ctx}"
                        );
                    }
                }
                other => panic!("{ctx}: statistics {other:?}"),
            }
        }
    }
}

/// The types the docs promise for some columns of each table.
fn check_types(t: &Table, want: &[(&str, Ty, bool)]) {
    for (name, ty, optional) in want {
        let j = t
            .names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        assert_eq!(
            (t.types[j], t.optional[j]),
            (*ty, *optional),
            "column {name}: (type, optional)"
        );
    }
}

/// Export `name` as CSV and Parquet in one run and compare all three tables.
fn export_and_compare(name: &str, extra: &[&str]) -> (Table, Table, Table) {
    let files = fixture(name);
    let d = tmpdir(name);
    let (c, p) = (d.join("csv"), d.join("parquet"));
    let mut args = vec![
        "export",
        "--csv",
        c.to_str().unwrap(),
        "--parquet",
        p.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = run(&args, &files);
    assert!(o.status.success(), "{}", text(&o));
    for t in ["connections", "messages", "stages"] {
        assert!(
            text(&o).contains(&p.join(format!("{t}.parquet")).display().to_string()),
            "{}",
            text(&o)
        );
    }
    let conns = compare(&c, &p, "connections");
    let msgs = compare(&c, &p, "messages");
    let stages = compare(&c, &p, "stages");
    let _ = std::fs::remove_dir_all(&d);
    (conns, msgs, stages)
}

#[test]
fn pingpong_parquet_equals_csv_in_bounded_row_groups() {
    let (conns, msgs, stages) = export_and_compare("pingpong", &["--row-group-rows", "1000"]);
    // 4001 messages in row groups of at most 1000 rows.
    assert!(
        msgs.rows.len() > 4000,
        "pingpong has thousands of messages, found {}",
        msgs.rows.len()
    );
    assert_eq!(
        msgs.row_groups.len(),
        msgs.rows.len().div_ceil(1000),
        "row groups: {:?}",
        msgs.row_groups
    );
    assert!(
        msgs.row_groups.iter().all(|&n| n <= 1000),
        "row groups: {:?}",
        msgs.row_groups
    );
    check_types(
        &msgs,
        &[
            ("conn", Ty::Int, false),
            ("dir", Ty::Text, false),
            ("complete", Ty::Bool, false),
            ("gaps", Ty::Text, false),
            ("cdc_seqno", Ty::Int, true),
            ("blocking_stage", Ty::Text, true),
            ("t_send_enter_ns", Ty::Int, true),
            ("t_delivered_ns", Ty::Int, true),
            ("e2e_ns", Ty::Int, true),
            ("latency_ns", Ty::Int, false),
        ],
    );
    check_types(
        &conns,
        &[
            ("id", Ty::Int, false),
            ("client", Ty::Text, true),
            ("fallback_code", Ty::Int, true),
            ("qpn", Ty::Int, true),
        ],
    );
    check_types(
        &stages,
        &[("stage", Ty::Text, false), ("p99_ns", Ty::Int, false)],
    );
    assert_eq!(
        stages.rows.len(),
        10,
        "every stage has complete messages in pingpong"
    );
    // Both recordings given: every complete message has its end-to-end latency.
    let e2e = msgs.names.iter().position(|n| n == "e2e_ns").unwrap();
    let complete = msgs.names.iter().position(|n| n == "complete").unwrap();
    assert!(msgs
        .rows
        .iter()
        .filter(|r| r[complete] == Field::Bool(true))
        .all(|r| matches!(r[e2e], Field::Long(n) if n > 0)));
}

#[test]
fn shortconn_parquet_equals_csv() {
    let (conns, msgs, _) = export_and_compare("shortconn", &[]);
    assert!(
        conns.rows.len() > 1,
        "shortconn has many connections, found {}",
        conns.rows.len()
    );
    assert!(!msgs.rows.is_empty());
    assert_eq!(
        msgs.row_groups.len(),
        1,
        "default row group holds the whole small table"
    );
}

#[test]
fn fallback_parquet_equals_csv_with_decline_codes() {
    let (conns, msgs, _) = export_and_compare("fallback", &[]);
    let code = conns
        .names
        .iter()
        .position(|n| n == "fallback_code")
        .unwrap();
    assert!(
        conns
            .rows
            .iter()
            .any(|r| matches!(r[code], Field::Long(c) if c > 0)),
        "the fallback fixture has a decline code: {:?}",
        conns.rows
    );
    // Nulls where the CSV cell is empty: a fallback connection has no latency and no tokens.
    for name in ["latency_p50_ns", "local_token", "qpn", "ibname"] {
        let j = conns.names.iter().position(|n| n == name).unwrap();
        assert!(
            conns.rows.iter().all(|r| r[j] == Field::Null),
            "{name} should be null: {:?}",
            conns.rows
        );
    }
    // No data moved: an empty messages table is still a valid file with every column.
    assert!(
        msgs.rows.is_empty() && msgs.row_groups.is_empty(),
        "{:?}",
        msgs.row_groups
    );
    assert_eq!(msgs.names.len(), 12 + 11 + 10);
}

#[test]
fn one_sided_recording_has_nulls_across_row_groups() {
    // Only the client's recording: the receiver's points of forward messages
    // and every cross-host stage are unknown (null), the others present.
    let files = &fixture("pingpong")[..1];
    let d = tmpdir("one");
    let (c, p) = (d.join("csv"), d.join("parquet"));
    let o = run(
        &[
            "export",
            "--csv",
            c.to_str().unwrap(),
            "--parquet",
            p.to_str().unwrap(),
            "--row-group-rows",
            "777",
        ],
        files,
    );
    assert!(o.status.success(), "{}", text(&o));
    let msgs = compare(&c, &p, "messages");
    compare(&c, &p, "connections");
    compare(&c, &p, "stages");
    assert!(
        msgs.row_groups.len() > 1 && msgs.row_groups.iter().all(|&n| n <= 777),
        "{:?}",
        msgs.row_groups
    );
    let col = |name: &str| msgs.names.iter().position(|n| n == name).unwrap();
    let nulls = |j: usize| msgs.rows.iter().filter(|r| r[j] == Field::Null).count();
    let (recv, e2e, gaps) = (col("t_cdc_recv_ns"), col("e2e_ns"), col("gaps"));
    assert!(
        nulls(recv) > 0 && nulls(recv) < msgs.rows.len(),
        "t_cdc_recv_ns: {} nulls of {}",
        nulls(recv),
        msgs.rows.len()
    );
    assert_eq!(
        nulls(e2e),
        msgs.rows.len(),
        "no end-to-end latency from one side"
    );
    assert!(msgs
        .rows
        .iter()
        .all(|r| r[gaps] == Field::Str("peer_not_recorded".into())));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn parquet_alone_and_selection_flags() {
    // --parquet without --csv, with a selection: the same rows as the CSV of the same selection.
    let files = fixture("shortconn");
    let d = tmpdir("sel");
    let o = run(
        &[
            "export",
            "--parquet",
            d.join("p").to_str().unwrap(),
            "--conn",
            "2",
        ],
        &files,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!d.join("p/messages.csv").exists());
    let o = run(
        &[
            "export",
            "--csv",
            d.join("c").to_str().unwrap(),
            "--conn",
            "2",
        ],
        &files,
    );
    assert!(o.status.success(), "{}", text(&o));
    let msgs = compare(&d.join("c"), &d.join("p"), "messages");
    let conn = msgs.names.iter().position(|n| n == "conn").unwrap();
    assert!(!msgs.rows.is_empty() && msgs.rows.iter().all(|r| r[conn] == Field::Long(2)));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unwritable_parquet_dir_is_one_error_line() {
    let files = fixture("pingpong");
    let d = tmpdir("bad");
    let blocker = d.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let target = blocker.join("sub");
    let o = run(&["export", "--parquet", target.to_str().unwrap()], &files);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("smc-analyze: ") && err.contains("cannot create directory"),
        "{err}"
    );
    let o = run(
        &[
            "export",
            "--parquet",
            d.to_str().unwrap(),
            "--row-group-rows",
            "0",
        ],
        &files,
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "row groups of 0 rows are refused: {}",
        text(&o)
    );
    let o = run(
        &[
            "export",
            "--csv",
            d.to_str().unwrap(),
            "--row-group-rows",
            "10",
        ],
        &files,
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "--row-group-rows needs --parquet: {}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Two hosts (the server's clock 2 ms ahead): a ping-pong connection of
/// 1500 rounds with one lost receiver event (an incomplete message), a
/// second connection sending in pieces, a fallback connection.
fn synthetic_files(dir: &Path) -> Vec<PathBuf> {
    let mut sy = Synth::new(2);
    sy.host_offset[1] = 2_000_000;
    let mut c = SimConn::new(SimMode::SmcR, 0, 1, 65536, 1);
    c.handshake(&mut sy);
    for i in 0..1500 {
        c.pingpong_round(&mut sy, 64 + (i % 5) * 300);
        c.idle(50_000);
    }
    c.close(&mut sy);
    let mut d = SimConn::new(SimMode::SmcR, 0, 1, 16384, 2);
    d.now = c.now + 1_000_000;
    d.handshake(&mut sy);
    for _ in 0..200 {
        d.send(&mut sy, 0, 9000, 3);
        d.deliver(&mut sy, 1);
        d.recv(&mut sy, 1, 9000);
    }
    d.close(&mut sy);
    let mut fb = SimConn::new(SimMode::SmcR, 0, 1, 65536, 3);
    fb.now = d.now + 1_000_000;
    fb.handshake_fallback(&mut sy, 0x0303_0002);
    sy.drop_nth(1, EventKind::CdcRecv, 10);
    let files = vec![dir.join("client.smctrace"), dir.join("server.smctrace")];
    write_recording(&files[0], &sy.stream(0), "client", "boot-a", 0, 500, true).unwrap();
    write_recording(&files[1], &sy.stream(1), "server", "boot-b", 1, 500, true).unwrap();
    files
}

#[test]
fn synthetic_recording_many_row_groups_both_codecs() {
    let d = tmpdir("synth");
    let files = synthetic_files(&d);
    let (c, z, u) = (d.join("csv"), d.join("zstd"), d.join("none"));
    let o = run(
        &[
            "export",
            "--csv",
            c.to_str().unwrap(),
            "--parquet",
            z.to_str().unwrap(),
            "--row-group-rows",
            "1000",
        ],
        &files,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &[
            "export",
            "--parquet",
            u.to_str().unwrap(),
            "--row-group-rows",
            "1000",
            "--parquet-compression",
            "none",
        ],
        &files,
    );
    assert!(o.status.success(), "{}", text(&o));
    for dir in [&z, &u] {
        let msgs = compare(&c, dir, "messages");
        assert!(msgs.rows.len() > 3000, "{} messages", msgs.rows.len());
        assert_eq!(
            msgs.row_groups.len(),
            msgs.rows.len().div_ceil(1000),
            "{:?}",
            msgs.row_groups
        );
        let complete = msgs.names.iter().position(|n| n == "complete").unwrap();
        assert!(
            msgs.rows.iter().any(|r| r[complete] == Field::Bool(false)),
            "the lost event leaves an incomplete message"
        );
        let conns = compare(&c, dir, "connections");
        assert_eq!(conns.rows.len(), 3);
        compare(&c, dir, "stages");
        let want = if dir == &z { "ZSTD" } else { "UNCOMPRESSED" };
        assert!(
            msgs.codecs.iter().all(|x| x.starts_with(want)),
            "{want}: {:?}",
            msgs.codecs
        );
    }
    let size = |p: &Path| std::fs::metadata(p.join("messages.parquet")).unwrap().len();
    assert!(
        size(&z) * 2 < size(&u),
        "zstd {} vs uncompressed {}",
        size(&z),
        size(&u)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A Python 3 with the `duckdb` module, if this host has one.
fn duckdb_python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some("python3")
}

#[test]
fn duckdb_reads_the_export() {
    let Some(py) = duckdb_python() else {
        // Straight to stderr, not eprintln!: the test harness captures the
        // print macros of passing tests, and a skip must be seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "duckdb_reads_the_export: SKIPPED: python3 has no duckdb module (pip3 install duckdb)"
        );
        return;
    };
    let d = tmpdir("duckdb");
    let files = synthetic_files(&d);
    let (c, p) = (d.join("csv"), d.join("pq"));
    let o = run(
        &[
            "export",
            "--csv",
            c.to_str().unwrap(),
            "--parquet",
            p.to_str().unwrap(),
            "--row-group-rows",
            "700",
        ],
        &files,
    );
    assert!(o.status.success(), "{}", text(&o));
    // The same aggregates from DuckDB over the Parquet files and from the CSV here.
    let q = format!(
        "import duckdb\n\
         m = '{m}'\n\
         r = duckdb.sql(\"select count(*), count(t_cdc_recv_ns), sum(len), count(blocking_stage), \
         sum(case when complete then 1 else 0 end), count(distinct gaps), max(e2e_ns), min(dir) from '\" + m + \"'\").fetchall()[0]\n\
         print(*r, sep=',')\n\
         r = duckdb.sql(\"select count(*), count(fallback_code), max(fallback_code), string_agg(mode, '|' order by id) from '{cn}'\").fetchall()[0]\n\
         print(*r, sep=',')\n",
        m = p.join("messages.parquet").display(),
        cn = p.join("connections.parquet").display()
    );
    let o = Command::new(py)
        .args(["-c", &q])
        .output()
        .expect("run python3");
    assert!(o.status.success(), "duckdb: {}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let (_, msgs) = read_csv(&c.join("messages.csv"));
    let (head, _) = read_csv(&c.join("messages.csv"));
    let col = |n: &str| head.iter().position(|h| h == n).unwrap();
    let nonempty = |n: &str| msgs.iter().filter(|r| !r[col(n)].is_empty()).count();
    let sum_len: i64 = msgs
        .iter()
        .map(|r| r[col("len")].parse::<i64>().unwrap())
        .sum();
    let complete = msgs.iter().filter(|r| r[col("complete")] == "true").count();
    let mut gaps: Vec<&str> = msgs.iter().map(|r| r[col("gaps")].as_str()).collect();
    gaps.sort();
    gaps.dedup();
    let max_e2e = msgs
        .iter()
        .filter_map(|r| r[col("e2e_ns")].parse::<i64>().ok())
        .max()
        .unwrap();
    let min_dir = msgs.iter().map(|r| r[col("dir")].as_str()).min().unwrap();
    let want_m = format!(
        "{},{},{},{},{},{},{},{}",
        msgs.len(),
        nonempty("t_cdc_recv_ns"),
        sum_len,
        nonempty("blocking_stage"),
        complete,
        gaps.len(),
        max_e2e,
        min_dir
    );
    let (ch, conns) = read_csv(&c.join("connections.csv"));
    let cc = |n: &str| ch.iter().position(|h| h == n).unwrap();
    let codes: Vec<i64> = conns
        .iter()
        .filter_map(|r| r[cc("fallback_code")].strip_prefix("0x"))
        .map(|x| i64::from_str_radix(x, 16).unwrap())
        .collect();
    let modes: Vec<&str> = conns.iter().map(|r| r[cc("mode")].as_str()).collect();
    let want_c = format!(
        "{},{},{},{}",
        conns.len(),
        codes.len(),
        codes.iter().max().unwrap(),
        modes.join("|")
    );
    assert_eq!(
        out,
        format!("{want_m}\n{want_c}\n"),
        "DuckDB over Parquet vs the CSV"
    );
    let _ = std::fs::remove_dir_all(&d);
}
