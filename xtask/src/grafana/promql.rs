//! The metric and label names a PromQL query uses, read from its tokens.
//!
//! Written here rather than taken from a PromQL parser crate: the one kept
//! Rust parser (promql-parser, GreptimeDB's) brings an LR parser generator
//! (cfgrammar, lrlex, lrpar) and chrono into xtask, which every `cargo
//! xtask` compiles on a new machine, and a dashboard's queries are not
//! PromQL until Grafana has substituted its variables (`$__rate_interval`,
//! `label_values(...)`) anyway. Names are lexical in PromQL
//! (prometheus/docs/querying/basics.md): a metric name is an identifier in
//! selector position, label names stand before a matcher's operator inside
//! `{...}` or in the list of a grouping clause (`by`, `without`, `on`,
//! `ignoring`, `group_left`, `group_right`). Anything this reader does not
//! recognise is an error, not a silent skip.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail, ensure};

/// One token; string contents and numbers are not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str),
    /// A string, a number or a duration: a value, never a name.
    Literal,
    /// A Grafana variable (`$x`, `${x}`, `${x:regex}`): a value.
    Variable,
    Punct(&'a str),
}

/// Operators and punctuation, longest first.
const PUNCT: [&str; 22] = [
    "=~", "!~", "!=", "==", "<=", ">=", "{", "}", "(", ")", "[", "]", ",", "=", "<", ">", "+", "-",
    "*", "/", "%", "^",
];

/// Identifiers that are neither metrics nor functions.
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// Clauses whose parenthesised list holds label names.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn tokens(text: &str) -> Result<Vec<Token<'_>>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let rest = &text[i..];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b':')
                .count();
            out.push(Token::Ident(&rest[..len]));
            i += len;
        } else if c.is_ascii_digit() || c == b'.' {
            // Numbers (0.99, 1e9, 0x1f) and durations (5m, 1h30m).
            let mut len = 0;
            let b = rest.as_bytes();
            while len < b.len() {
                let d = b[len];
                let signed_exponent = (d == b'+' || d == b'-') && matches!(b[len - 1], b'e' | b'E');
                if d.is_ascii_alphanumeric() || d == b'.' || signed_exponent {
                    len += 1;
                } else {
                    break;
                }
            }
            out.push(Token::Literal);
            i += len;
        } else if c == b'"' || c == b'\'' || c == b'`' {
            let mut j = i + 1;
            loop {
                match bytes.get(j) {
                    None => bail!("unterminated string in {text:?}"),
                    Some(b'\\') if c != b'`' => j += 2,
                    Some(&b) if b == c => break,
                    Some(_) => j += 1,
                }
            }
            out.push(Token::Literal);
            i = j + 1;
        } else if c == b'$' {
            let len = if rest.starts_with("${") {
                rest.find('}').map(|end| end + 1)
            } else {
                Some(
                    1 + rest[1..]
                        .bytes()
                        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                        .count(),
                )
            };
            match len {
                Some(len) if len > 1 => {
                    out.push(Token::Variable);
                    i += len;
                }
                _ => bail!("a lone `$` in {text:?}"),
            }
        } else if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            out.push(Token::Punct(p));
            i += p.len();
        } else {
            bail!(
                "unexpected {:?} in {text:?}",
                rest.chars().next().unwrap_or_default()
            );
        }
    }
    Ok(out)
}

/// What one query reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// Each metric with the labels its own `{...}` matches on.
    pub metrics: BTreeMap<String, BTreeSet<String>>,
    /// Labels of grouping clauses: every metric of the query must have them.
    pub grouping: BTreeSet<String>,
}

/// The names `query` uses. `label_values(selector, label)`, Grafana's
/// variable query, reads `label` from the selector's metric.
pub fn names(query: &str) -> Result<Names> {
    if let Some(inner) = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        let (selector, label) = inner
            .rsplit_once(',')
            .ok_or_else(|| anyhow::anyhow!("label_values without a label: {query:?}"))?;
        let mut names = names(selector)?;
        ensure!(
            names.metrics.len() == 1,
            "label_values needs one metric: {query:?}"
        );
        for labels in names.metrics.values_mut() {
            labels.insert(label.trim().to_owned());
        }
        return Ok(names);
    }
    let tokens = tokens(query)?;
    let mut names = Names::default();
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        let next = tokens.get(i + 1);
        match token {
            Token::Ident(word) if GROUPING.contains(word) => {
                i += 1;
                // `group_left` may stand without a list.
                if next == Some(&Token::Punct("(")) {
                    i += 1;
                    loop {
                        match tokens.get(i) {
                            Some(Token::Ident(label)) => {
                                names.grouping.insert((*label).to_owned());
                            }
                            Some(Token::Punct(",")) => {}
                            Some(Token::Punct(")")) => break,
                            other => bail!("{other:?} in the {word} list of {query:?}"),
                        }
                        i += 1;
                    }
                    i += 1;
                }
            }
            Token::Ident(word) if KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) => {
                i += 1;
            }
            // A function, or an aggregation (`sum(...)`, `sum by (...) (...)`).
            Token::Ident(_)
                if matches!(
                    next,
                    Some(Token::Punct("(") | Token::Ident("by" | "without"))
                ) =>
            {
                i += 1;
            }
            Token::Ident(metric) => {
                let labels = names.metrics.entry((*metric).to_owned()).or_default();
                i += 1;
                if next == Some(&Token::Punct("{")) {
                    i = matchers(&tokens, i + 1, labels, query)?;
                }
            }
            Token::Punct("{") => bail!("a selector without a metric name in {query:?}"),
            // A range or a subquery's durations.
            Token::Punct("[") => {
                while tokens.get(i).is_some_and(|t| *t != Token::Punct("]")) {
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    ensure!(!names.metrics.is_empty(), "no metric in {query:?}");
    Ok(names)
}

/// Reads `label op value, ...}` from `i` on, adding the labels; returns
/// the index after `}`.
fn matchers(
    tokens: &[Token<'_>],
    mut i: usize,
    labels: &mut BTreeSet<String>,
    query: &str,
) -> Result<usize> {
    loop {
        match (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Punct("}")), ..) => return Ok(i + 1),
            (Some(Token::Punct(",")), ..) => i += 1,
            (
                Some(Token::Ident(label)),
                Some(Token::Punct("=" | "!=" | "=~" | "!~")),
                Some(Token::Literal),
            ) => {
                labels.insert((*label).to_owned());
                i += 3;
            }
            other => bail!("{other:?} in a label matcher of {query:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn selectors_functions_and_grouping() {
        let n = names(
            "histogram_quantile(0.99, sum by (le, server) (rate(a_bucket{role=~\"$role\", \
             server!=\"x\"}[$__rate_interval])))\n/ on(instance) group_left \
             sum without (kind) (b_total offset 5m) * 1e-9 + count(c)",
        )
        .unwrap();
        assert_eq!(
            n.metrics.keys().map(String::as_str).collect::<Vec<_>>(),
            ["a_bucket", "b_total", "c"]
        );
        assert_eq!(n.metrics["a_bucket"], set(&["role", "server"]));
        assert!(n.metrics["b_total"].is_empty());
        assert_eq!(n.grouping, set(&["instance", "kind", "le", "server"]));
    }

    #[test]
    fn aggregation_clause_after_the_arguments() {
        let n = names("sum(rate(x_total{kind=\"full\"}[5m])) by (server)").unwrap();
        assert_eq!(n.metrics["x_total"], set(&["kind"]));
        assert_eq!(n.grouping, set(&["server"]));
    }

    #[test]
    fn grafana_variable_queries() {
        let n =
            names("label_values(tlsmon_handshakes_total{instance=~\"$instance\"}, role)").unwrap();
        assert_eq!(
            n.metrics["tlsmon_handshakes_total"],
            set(&["instance", "role"])
        );
    }

    #[test]
    fn what_it_cannot_read_is_an_error() {
        assert!(names("{__name__=\"x\"}").is_err());
        assert!(names("x{a=\"unterminated}").is_err());
        assert!(names("x{a}").is_err());
        assert!(names("sum by (a").is_err());
        assert!(names("1 + 2").is_err());
        assert!(names("x # comment").is_err());
    }
}
