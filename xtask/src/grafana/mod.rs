//! `packaging/grafana/tlsmon.json`, the Grafana dashboard, read back: its
//! queries and the metric and label names they use ([`promql`]), checked
//! against what a source says tlsmon exports.
//!
//! The source that cannot drift is a real tlsmon's exposition: the
//! proxy-lab test scrapes tlsmon at the end of its `broken` run, where
//! every series the dashboard reads has samples, and checks the dashboard
//! against it ([`exported_by`]). docs/operations.md's metrics section is
//! checked too, by a unit test that needs no root ([`documented`]): it
//! catches a misspelt name at once, and keeps the operator's page naming
//! what the dashboard shows.

pub mod promql;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::programs::prometheus_label_names;

/// The dashboard, as it is installed.
pub const DASHBOARD: &str = include_str!("../../../packaging/grafana/tlsmon.json");

/// Labels Prometheus attaches to every series it scrapes: tlsmon does not
/// export them, a dashboard filters by them.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Metric names with the label names they carry.
pub type Exported = BTreeMap<String, BTreeSet<String>>;

/// One query of the dashboard and where it is.
#[derive(Clone, Debug)]
pub struct Query {
    pub place: String,
    pub expr: String,
}

/// Every query of the dashboard: each panel's targets (rows' panels too)
/// and each query variable.
pub fn queries(dashboard: &str) -> Result<Vec<Query>> {
    let dashboard: Value = serde_json::from_str(dashboard).context("the dashboard is not JSON")?;
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .context("the dashboard has no panels")?
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .with_context(|| format!("a target of panel {} has no expr", panel["title"]))?;
            out.push(Query {
                place: format!(
                    "panel {:?}, query {}",
                    panel["title"].as_str().unwrap_or_default(),
                    target["refId"].as_str().unwrap_or_default()
                ),
                expr: expr.to_owned(),
            });
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] == "query" {
            let expr = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .with_context(|| format!("variable {} has no query", var["name"]))?;
            out.push(Query {
                place: format!("variable {}", var["name"].as_str().unwrap_or_default()),
                expr: expr.to_owned(),
            });
        }
    }
    Ok(out)
}

/// Fails, naming each, unless every metric and label the dashboard's
/// queries use is in `exported` (`source` names it in the message).
pub fn check(dashboard: &str, exported: &Exported, source: &str) -> Result<()> {
    let mut problems = BTreeSet::new();
    for query in queries(dashboard)? {
        let names = promql::names(&query.expr).with_context(|| query.place.clone())?;
        for (metric, labels) in &names.metrics {
            let Some(has) = exported.get(metric) else {
                problems.insert(format!("{}: {metric} is not in {source}", query.place));
                continue;
            };
            for label in labels.iter().chain(&names.grouping) {
                if !has.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                    problems.insert(format!(
                        "{}: {metric} has no label {label} in {source}",
                        query.place
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = problems.into_iter().collect();
        bail!(
            "the Grafana dashboard reads what tlsmon does not export:\n  {}",
            list.join("\n  ")
        )
    }
}

/// What a real tlsmon's exposition holds, read by the reference parser.
pub fn exported_by(exposition: &str) -> Result<Exported> {
    prometheus_label_names(exposition)
}

/// What docs/operations.md's metrics section says tlsmon exports: the
/// table's metrics (with `server`, `role` and the row's labels) and the
/// paragraph of metrics without server labels (`name{label}`). A name
/// without `_total` may be a histogram: its `_bucket` (with `le`), `_sum`
/// and `_count` series count as documented too.
pub fn documented(operations_md: &str) -> Result<Exported> {
    let section = operations_md
        .split("\n## ")
        .find(|s| s.starts_with("Metrics\n"))
        .context("docs/operations.md has no Metrics section")?;
    let mut out = Exported::new();
    let mut add = |name: &str, labels: &[&str]| {
        let labels: BTreeSet<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        if !name.ends_with("_total") {
            for suffix in ["_sum", "_count", "_bucket"] {
                let mut labels = labels.clone();
                if suffix == "_bucket" {
                    labels.insert("le".to_owned());
                }
                out.entry(format!("{name}{suffix}"))
                    .or_default()
                    .extend(labels);
            }
        }
        out.entry(name.to_owned()).or_default().extend(labels);
    };
    for row in section.lines().filter(|l| l.starts_with("| `tlsmon_")) {
        let mut cells = row.split('|').skip(1);
        let (names, extra) = (cells.next().unwrap_or(""), cells.next().unwrap_or(""));
        for name in backticked(names) {
            let mut labels = vec!["server", "role"];
            labels.extend(backticked(extra));
            add(name, &labels);
        }
    }
    let unlabelled = section
        .split("\n\n")
        .find(|p| p.starts_with("Without server labels:"))
        .context("docs/operations.md has no paragraph of metrics without server labels")?;
    for item in backticked(unlabelled).filter(|i| i.starts_with("tlsmon_")) {
        let (name, labels) = match item.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (item, ""),
        };
        let labels: Vec<&str> = labels
            .split(',')
            .filter_map(|l| l.split('=').next())
            .filter(|l| !l.is_empty())
            .collect();
        add(name, &labels);
    }
    if out.is_empty() {
        bail!("docs/operations.md's Metrics section names no metric");
    }
    Ok(out)
}

/// The `code` spans of a piece of Markdown.
fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::workspace_root;

    #[test]
    fn every_query_names_only_what_the_docs_say_tlsmon_exports() {
        let docs = std::fs::read_to_string(workspace_root().join("docs/operations.md")).unwrap();
        let documented = documented(&docs).unwrap();
        assert!(documented["tlsmon_rejected_total"].contains("cause"));
        assert!(documented["tlsmon_rejected_total"].contains("server"));
        assert!(documented["tlsmon_diagnosis"].contains("rule"));
        assert!(documented["tlsmon_diagnosis"].contains("severity"));
        assert!(documented["tlsmon_lost_events_total"].is_empty());
        assert!(documented["tlsmon_skipped_packets_total"].contains("reason"));
        assert!(documented["tlsmon_split_client_hellos_total"].contains("outcome"));
        check(DASHBOARD, &documented, "docs/operations.md").unwrap_or_else(|e| panic!("{e:#}"));
    }

    #[test]
    fn the_check_finds_unknown_metrics_and_labels() {
        let exported: Exported = [
            ("tlsmon_handshakes_total", &["server", "role", "kind"][..]),
            ("tlsmon_events_total", &[][..]),
        ]
        .into_iter()
        .map(|(m, ls)| (m.to_owned(), ls.iter().map(|l| (*l).to_owned()).collect()))
        .collect();
        let dashboard = |expr: &str| {
            serde_json::json!({"panels": [{"title": "p", "targets": [{"refId": "A", "expr": expr}]}]})
                .to_string()
        };
        let ok =
            "sum by (server) (rate(tlsmon_handshakes_total{kind=\"full\", instance=~\"$i\"}[5m]))";
        check(&dashboard(ok), &exported, "x").unwrap();
        for (bad, why) in [
            (
                "rate(tlsmon_handshake_total[5m])",
                "tlsmon_handshake_total is not in x",
            ),
            (
                "rate(tlsmon_handshakes_total{cause=\"a\"}[5m])",
                "has no label cause",
            ),
            (
                "sum by (server) (tlsmon_events_total)",
                "tlsmon_events_total has no label server",
            ),
        ] {
            let err = check(&dashboard(bad), &exported, "x")
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_dashboard_is_one_grafana_dashboard() {
        let d: Value = serde_json::from_str(DASHBOARD).unwrap();
        assert_eq!(d["uid"], "tlsmon");
        let panels = d["panels"].as_array().unwrap();
        let mut ids = BTreeSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "panel id twice: {}",
                p["id"]
            );
            assert!(p["gridPos"]["w"].as_u64().is_some(), "{}", p["title"]);
            if p["type"] != "row" {
                assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
                let refs: BTreeSet<&str> = p["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|t| t["refId"].as_str())
                    .collect();
                assert_eq!(
                    refs.len(),
                    p["targets"].as_array().unwrap().len(),
                    "{}",
                    p["title"]
                );
            }
        }
        assert!(queries(DASHBOARD).unwrap().len() >= 10);
    }
}
