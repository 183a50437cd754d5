//! Output plumbing shared by subcommands: the format flag, aligned tables, truncation, JSON lines.

use std::io::{self, Write};

use serde::Serialize;

/// `-o/--output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line (per record, proxy or flag).
    Jsonl,
}

/// A column of a table: its header and the widest a cell may be before it is cut with `…`.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// Widest cell, in characters.
    pub max_width: usize,
}

/// Cuts `text` to at most `max` characters, ending in `…` when something was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// `-` for an empty value, so columns never look shifted.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// Writes a table: headers, then rows, columns separated by two spaces, cells cut to their
/// column's width, no trailing spaces.
pub fn write_table(
    out: &mut impl Write,
    columns: &[Column],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(columns)
                .map(|(cell, column)| truncate(cell, column.max_width))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            cells
                .iter()
                .filter_map(|row| row.get(index))
                .map(|cell| cell.chars().count())
                .chain([column.header.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let headers: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    for row in std::iter::once(&headers).chain(&cells) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[index].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes one value as pretty JSON followed by a newline.
pub fn write_json(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// Writes each value as compact JSON on its own line.
pub fn write_jsonl<T: Serialize>(
    out: &mut impl Write,
    values: impl IntoIterator<Item = T>,
) -> io::Result<()> {
    for value in values {
        serde_json::to_writer(&mut *out, &value)?;
        writeln!(out)?;
    }
    Ok(())
}

/// A short age such as `4s`, `12m`, `3h` or `2d`.
pub fn format_age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        assert_eq!(truncate("longer than ten", 10), "longer th…");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }

    #[test]
    fn table_aligns_and_cuts() {
        let columns = [
            Column {
                header: "A",
                max_width: 10,
            },
            Column {
                header: "BEE",
                max_width: 4,
            },
            Column {
                header: "C",
                max_width: 10,
            },
        ];
        let rows = vec![
            vec!["x".into(), "abcdefgh".into(), "last".into()],
            vec!["longer".into(), "b".into(), "-".into()],
        ];
        let mut out = Vec::new();
        write_table(&mut out, &columns, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A       BEE   C\n\
             x       abc…  last\n\
             longer  b     -\n"
        );
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(5), "5s");
        assert_eq!(format_age(125), "2m");
        assert_eq!(format_age(7200), "2h");
        assert_eq!(format_age(200_000), "2d");
    }

    #[test]
    fn dash() {
        assert_eq!(or_dash(""), "-");
        assert_eq!(or_dash("x"), "x");
    }
}
