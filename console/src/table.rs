//! Plain-text tables for people (`--json` gives scripts the raw API objects).
//!
//! Hand-written: left-aligned columns padded to the widest cell is all we need, and it keeps
//! the CLI's dependencies small.

use serde_json::Value;

/// Renders rows under headers, columns separated by two spaces.
#[must_use]
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// A JSON value as a table cell: strings bare, null as `-`, arrays comma-separated.
#[must_use]
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_line_up() {
        let out = render(&["ID", "NAME"], &[vec!["1".into(), "Default".into()], vec!["12".into(), "x".into()]]);
        assert_eq!(out, "ID  NAME\n1   Default\n12  x");
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!([2, 3])), "2,3");
        assert_eq!(cell(&json!("a")), "a");
    }
}
