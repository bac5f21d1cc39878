//! Plain-text tables for people (`--json` gives scripts the API's objects).
//!
//! Hand-written: left-aligned columns padded to the widest cell is all we need, and it keeps
//! the CLI's dependencies small.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let out = render(&["ID", "NAME"], &[vec!["1".into(), "Default".into()], vec!["12".into(), "x".into()]]);
        assert_eq!(out, "ID  NAME\n1   Default\n12  x");
    }
}
