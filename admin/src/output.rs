//! How results are printed: aligned tables for people, JSON for scripts
//! (`--format json`: one document per command, or one object per line for
//! `consume`). Results go to stdout, messages and errors to stderr, so a
//! pipe gets data only.

use std::io::Write;

use serde::Serialize;

use crate::error::{error_name, AdminError, Result};
use crate::Ctx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables (consume: one record per line)
    Text,
    /// JSON (consume: one JSON object per line)
    Json,
}

/// Columns of text, each as wide as its widest cell, two spaces apart.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for r in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(&format!("{c:<w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) -> Result<()> {
        write_stdout(&self.render())
    }
}

/// Prints `value` as one pretty JSON document.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let s = serde_json::to_string_pretty(value)
        .map_err(|e| AdminError::Protocol(format!("encode JSON: {e}")))?;
    write_stdout(&format!("{s}\n"))
}

/// Prints what `describe` found: one JSON array, or one text block per
/// item, a blank line between.
pub fn print_described<T: Serialize>(
    ctx: &Ctx,
    items: &[T],
    text: impl Fn(&T) -> String,
) -> Result<()> {
    if ctx.json() {
        return print_json(&items);
    }
    let blocks: Vec<String> = items.iter().map(text).collect();
    write_stdout(&blocks.join("\n"))
}

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly
/// rather than with a panic.
pub fn write_stdout(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(AdminError::Failed(format!("write to stdout: {e}"))),
    }
}

/// One item's outcome (a topic, a group) in a command over several: the
/// Kafka APIs answer per item, so each succeeds or fails on its own.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub name: String,
    /// Kafka's error name, `None` on success.
    pub error: Option<String>,
    pub message: Option<String>,
}

impl Outcome {
    pub fn of(name: String, code: i16, message: Option<String>) -> Outcome {
        Outcome {
            name,
            error: (code != 0).then(|| error_name(code)),
            message: message.filter(|m| !m.is_empty()),
        }
    }
}

/// Prints the outcomes; an error if any failed.
pub fn report(ctx: &Ctx, what: &'static str, outcomes: &[Outcome], ok: &str) -> Result<()> {
    if ctx.json() {
        print_json(&outcomes)?;
    } else {
        let mut t = Table::new(&[what, "STATUS"]);
        for o in outcomes {
            let status = match (&o.error, &o.message) {
                (None, _) => ok.to_string(),
                (Some(e), Some(m)) => format!("{e}: {m}"),
                (Some(e), None) => e.clone(),
            };
            t.row(vec![o.name.clone(), status]);
        }
        t.print()?;
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    if failed > 0 {
        // The reasons again on stderr, where a script's log looks.
        let reasons: Vec<String> = outcomes
            .iter()
            .filter_map(|o| {
                let e = o.error.as_ref()?;
                Some(match &o.message {
                    Some(m) => format!("{}: {e}: {m}", o.name),
                    None => format!("{}: {e}", o.name),
                })
            })
            .collect();
        return Err(AdminError::Failed(format!(
            "{failed} of {} failed: {}",
            outcomes.len(),
            reasons.join("; ")
        )));
    }
    Ok(())
}

/// A list of node ids as Kafka's tools print them: `1,2,3`.
pub fn ids(v: &[i32]) -> String {
    v.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_space() {
        let mut t = Table::new(&["NAME", "PARTITIONS", "X"]);
        t.row(vec!["a-long-name".into(), "1".into(), "".into()]);
        t.row(vec!["b".into(), "12".into(), "z".into()]);
        assert_eq!(
            t.render(),
            "NAME         PARTITIONS  X\na-long-name  1\nb            12          z\n"
        );
    }
}
