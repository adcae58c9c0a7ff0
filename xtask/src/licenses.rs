//! `cargo xtask licenses`: the licence gate. smctrace is GPL-2.0-only, so every crate
//! linked into a binary we ship must carry a licence the GPL-2.0 can absorb. The gate
//! reads `cargo metadata`, walks the normal (not dev-, not build-only) dependencies of
//! the packages that own the shipped binaries, evaluates each crate's SPDX expression
//! (`OR`: one compatible choice is enough; `AND`: every part must be compatible; `/` is
//! the old spelling of `OR`) and fails naming every offending crate with the dependency
//! path that pulls it in. Dev-dependencies (e.g. the Apache-2.0 `parquet` crate that
//! smc-analyze's tests use to read its Parquet files back) never reach a binary.
//!
//! The walk covers every target platform's dependencies (no `--filter-platform`), so a
//! binary built for another architecture is covered too. `cargo xtask test` runs it
//! before the tests. See docs/ci.md.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::process::Command;

/// The binaries smctrace ships (the bin targets of the workspace, not xtask).
pub const SHIPPED: &[&str] = &["smc-record", "smc-analyze", "smc-load", "smcctl"];

/// SPDX licence ids a GPL-2.0-only program may link (FSF's list of GPL-compatible
/// licences: permissive licences, LGPL-2.x, MPL-2.0 through its secondary-licence
/// clause, GPL-2.0 itself). Apache-2.0 is absent: the FSF holds it incompatible with
/// GPL version 2 (its patent termination clause); `Apache-2.0 WITH LLVM-exception` is
/// compatible by the exception's own wording.
const COMPATIBLE: &[&str] = &[
    "MIT",
    "MIT-0",
    "ISC",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "0BSD",
    "Zlib",
    "Unlicense",
    "CC0-1.0",
    "BSL-1.0",
    "NCSA",
    "Unicode-DFS-2016",
    "Unicode-3.0",
    "MPL-2.0",
    "LGPL-2.0",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.0+",
    "LGPL-2.1",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-2.1+",
    "GPL-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-2.0+",
];

/// One node of a parsed SPDX expression.
#[derive(Debug, PartialEq)]
enum Expr {
    Id(String),
    With(String, String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

fn tokens(s: &str) -> Vec<String> {
    let spaced = s
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ");
    spaced.split_whitespace().map(str::to_string).collect()
}

/// Parse an SPDX licence expression (`a OR (b AND c WITH d)`, `a/b`).
fn parse(s: &str) -> Result<Expr> {
    fn or(t: &[String], i: &mut usize) -> Result<Expr> {
        let mut v = vec![and(t, i)?];
        while t.get(*i).is_some_and(|x| x.eq_ignore_ascii_case("OR")) {
            *i += 1;
            v.push(and(t, i)?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap()
        } else {
            Expr::Or(v)
        })
    }
    fn and(t: &[String], i: &mut usize) -> Result<Expr> {
        let mut v = vec![atom(t, i)?];
        while t.get(*i).is_some_and(|x| x.eq_ignore_ascii_case("AND")) {
            *i += 1;
            v.push(atom(t, i)?);
        }
        Ok(if v.len() == 1 {
            v.pop().unwrap()
        } else {
            Expr::And(v)
        })
    }
    fn atom(t: &[String], i: &mut usize) -> Result<Expr> {
        let Some(x) = t.get(*i) else {
            bail!("expression ends early")
        };
        *i += 1;
        if x == "(" {
            let e = or(t, i)?;
            if t.get(*i).map(String::as_str) != Some(")") {
                bail!("missing )");
            }
            *i += 1;
            return Ok(e);
        }
        if [")", "AND", "OR", "WITH"]
            .iter()
            .any(|k| x.eq_ignore_ascii_case(k))
        {
            bail!("unexpected {x}");
        }
        if t.get(*i).is_some_and(|w| w.eq_ignore_ascii_case("WITH")) {
            let Some(exc) = t.get(*i + 1) else {
                bail!("WITH without an exception")
            };
            *i += 2;
            return Ok(Expr::With(x.clone(), exc.clone()));
        }
        Ok(Expr::Id(x.clone()))
    }
    let t = tokens(s);
    let mut i = 0;
    let e = or(&t, &mut i).with_context(|| format!("licence expression {s:?}"))?;
    if i != t.len() {
        bail!("licence expression {s:?}: unexpected {}", t[i]);
    }
    Ok(e)
}

/// Can a GPL-2.0-only binary link code under this expression?
fn compatible(e: &Expr) -> bool {
    match e {
        Expr::Id(id) => COMPATIBLE.contains(&id.as_str()),
        // An exception only adds permissions; LLVM's makes Apache-2.0 GPL-2.0-compatible.
        Expr::With(id, exc) => {
            COMPATIBLE.contains(&id.as_str()) || (id == "Apache-2.0" && exc == "LLVM-exception")
        }
        Expr::And(v) => v.iter().all(compatible),
        Expr::Or(v) => v.iter().any(compatible),
    }
}

/// One crate a shipped binary links that fails the gate.
#[derive(Debug, PartialEq)]
pub struct Offence {
    pub krate: String,
    pub license: String,
    /// The dependency path from the shipped package, `smc-analyze -> a -> b`.
    pub path: String,
}

/// The offending crates of a `cargo metadata --format-version 1` document, and how
/// many crates the shipped binaries link.
fn check_metadata(meta: &Value) -> Result<(Vec<Offence>, usize)> {
    let packages = meta["packages"]
        .as_array()
        .context("cargo metadata: no packages")?;
    let by_id: HashMap<&str, &Value> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata: no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let label = |id: &str| {
        let p = by_id.get(id);
        format!(
            "{} {}",
            p.and_then(|p| p["name"].as_str()).unwrap_or(id),
            p.and_then(|p| p["version"].as_str()).unwrap_or("")
        )
    };
    // Breadth-first from the shipped packages, over normal dependencies only.
    let mut parent: HashMap<&str, Option<&str>> = HashMap::new();
    let mut queue = VecDeque::new();
    for p in packages {
        let ships = p["targets"].as_array().into_iter().flatten().any(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
                && SHIPPED.contains(&t["name"].as_str().unwrap_or(""))
        });
        if let (true, Some(id)) = (ships, p["id"].as_str()) {
            parent.insert(id, None);
            queue.push_back(id);
        }
    }
    if queue.len() < SHIPPED.len() {
        bail!(
            "cargo metadata: found {} of the {} shipped binaries ({})",
            queue.len(),
            SHIPPED.len(),
            SHIPPED.join(", ")
        );
    }
    while let Some(id) = queue.pop_front() {
        let Some(node) = nodes.get(id) else {
            bail!("cargo metadata: {} not in the resolve graph", label(id))
        };
        for d in node["deps"].as_array().into_iter().flatten() {
            let normal = d["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if let (true, Some(dep)) = (normal, d["pkg"].as_str()) {
                if !parent.contains_key(dep) {
                    parent.insert(dep, Some(id));
                    queue.push_back(dep);
                }
            }
        }
    }
    let mut offences = Vec::new();
    for &id in parent.keys() {
        let p = by_id
            .get(id)
            .with_context(|| format!("cargo metadata: no package {id}"))?;
        let license = p["license"].as_str();
        let ok = match license {
            Some(l) => compatible(&parse(l)?),
            None => false,
        };
        if !ok {
            let mut chain = vec![label(id)];
            let mut at = id;
            while let Some(Some(up)) = parent.get(at) {
                chain.push(label(up));
                at = up;
            }
            chain.reverse();
            let license = match license {
                Some(l) => l.to_string(),
                None => format!(
                    "no SPDX licence (license-file {})",
                    p["license_file"].as_str().unwrap_or("none")
                ),
            };
            offences.push(Offence {
                krate: label(id),
                license,
                path: chain.join(" -> "),
            });
        }
    }
    offences.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((offences, parent.len()))
}

/// `cargo xtask licenses`: 0 when every linked crate is compatible, 1 otherwise.
pub fn check() -> Result<i32> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--all-features"])
        .current_dir(crate::host::workspace_root())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("cargo metadata: not JSON")?;
    let (offences, linked) = check_metadata(&meta)?;
    if offences.is_empty() {
        println!(
            "licenses: {linked} crates linked into {}: all GPL-2.0-compatible",
            SHIPPED.join(", ")
        );
        return Ok(0);
    }
    for o in &offences {
        eprintln!(
            "licenses: {} is {}, not GPL-2.0-compatible: {}",
            o.krate, o.license, o.path
        );
    }
    println!(
        "licenses: {} of {linked} linked crates are not GPL-2.0-compatible",
        offences.len()
    );
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(s: &str) -> bool {
        compatible(&parse(s).unwrap())
    }

    #[test]
    fn expressions() {
        for s in [
            "MIT",
            "MIT OR Apache-2.0",
            "Apache-2.0 OR MIT",
            "MIT/Apache-2.0",
            "(MIT OR Apache-2.0) AND Unicode-3.0",
            "GPL-2.0-only",
        ] {
            assert!(ok(s), "{s}");
        }
        assert!(ok("Apache-2.0 WITH LLVM-exception"));
        assert!(ok("BSD-3-Clause AND BSD-2-Clause"));
        for s in [
            "Apache-2.0",
            "MIT AND Apache-2.0",
            "GPL-3.0-only",
            "LGPL-3.0-or-later OR Apache-2.0",
            "(MIT OR Apache-2.0) AND Apache-2.0",
        ] {
            assert!(!ok(s), "{s}");
        }
        assert!(parse("MIT OR").is_err());
        assert!(parse("(MIT").is_err());
        assert!(parse("MIT Apache-2.0").is_err());
    }

    /// A workspace whose smc-analyze links `a` (MIT) which links `bad` (Apache-2.0),
    /// with `devonly` (Apache-2.0) as a dev-dependency and `tool` (Apache-2.0) a build one.
    fn meta(bad_license: Option<&str>) -> Value {
        let pkg = |name: &str, license: Option<&str>, bin: Option<&str>| {
            json!({"id": format!("{name}-id"), "name": name, "version": "1.0.0", "license": license, "license_file": null,
                   "targets": bin.map(|b| vec![json!({"name": b, "kind": ["bin"]})]).unwrap_or_default()})
        };
        let dep = |name: &str, kind: Option<&str>| json!({"pkg": format!("{name}-id"), "dep_kinds": [{"kind": kind, "target": null}]});
        let mut packages = vec![
            pkg("a", Some("MIT"), None),
            pkg("bad", bad_license, None),
            pkg("devonly", Some("Apache-2.0"), None),
            pkg("tool", Some("Apache-2.0"), None),
        ];
        let mut nodes = vec![
            json!({"id": "a-id", "deps": [dep("bad", None)]}),
            json!({"id": "bad-id", "deps": []}),
            json!({"id": "devonly-id", "deps": []}),
            json!({"id": "tool-id", "deps": []}),
        ];
        for b in SHIPPED {
            packages.push(pkg(b, Some("GPL-2.0-only"), Some(b)));
            let deps = if *b == "smc-analyze" {
                vec![
                    dep("a", None),
                    dep("devonly", Some("dev")),
                    dep("tool", Some("build")),
                ]
            } else {
                vec![]
            };
            nodes.push(json!({"id": format!("{b}-id"), "deps": deps}));
        }
        json!({"packages": packages, "resolve": {"nodes": nodes}})
    }

    #[test]
    fn offending_crate_is_named_with_its_path_and_dev_deps_do_not_count() {
        let (off, linked) = check_metadata(&meta(Some("Apache-2.0"))).unwrap();
        assert_eq!(linked, SHIPPED.len() + 2);
        assert_eq!(
            off,
            vec![Offence {
                krate: "bad 1.0.0".into(),
                license: "Apache-2.0".into(),
                path: "smc-analyze 1.0.0 -> a 1.0.0 -> bad 1.0.0".into()
            }]
        );
        let (off, _) = check_metadata(&meta(Some("MIT OR Apache-2.0"))).unwrap();
        assert!(off.is_empty(), "{off:?}");
        let (off, _) = check_metadata(&meta(None)).unwrap();
        assert_eq!(off.len(), 1);
        assert!(off[0].license.starts_with("no SPDX licence"), "{off:?}");
    }
}
