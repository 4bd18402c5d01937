//! How a value of the report is written into a table cell of
//! docs/performance.md: the number, or why there is none.

use serde_json::Value;

use super::report::{Part, number};

/// A value that can fill a table cell.
pub trait Cell {
    fn cell(&self, unit: &str) -> String;
}

impl Cell for f64 {
    fn cell(&self, unit: &str) -> String {
        format!("{}{unit}", number(*self))
    }
}

impl Cell for u64 {
    fn cell(&self, unit: &str) -> String {
        format!("{self}{unit}")
    }
}

impl<T: Cell> Cell for Part<T> {
    fn cell(&self, unit: &str) -> String {
        match (self.value(), self.reason()) {
            (Some(v), _) => v.cell(unit),
            (None, reason) => format!("({})", reason.unwrap_or_default()),
        }
    }
}

impl<T: Cell> Cell for Option<T> {
    fn cell(&self, unit: &str) -> String {
        self.as_ref()
            .map_or_else(|| "—".to_owned(), |v| v.cell(unit))
    }
}

impl<T: Cell + ?Sized> Cell for &T {
    fn cell(&self, unit: &str) -> String {
        (**self).cell(unit)
    }
}

/// A field the example printed as it printed it.
impl Cell for Value {
    fn cell(&self, unit: &str) -> String {
        match self {
            Self::Number(n) => n.as_f64().map_or_else(String::new, |n| n.cell(unit)),
            v => v
                .get("skipped")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map_or_else(|| "—".to_owned(), |s| format!("({s})")),
        }
    }
}
