//! `meshwhy flags`: Envoy's response flags and what they mean, no collector needed.

use std::io::{BufWriter, Write};

use clap::Args;
use serde::Serialize;

use super::CliError;
use super::output::{self, Column, OutputFormat};
use crate::flags::{FLAGS, FlagInfo};

/// Output of `meshwhy flags`.
#[derive(Debug, Args)]
pub struct FlagsArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Serialize)]
struct JsonFlag {
    bit: u32,
    name: &'static str,
    meaning: &'static str,
}

impl From<&FlagInfo> for JsonFlag {
    fn from(flag: &FlagInfo) -> Self {
        Self {
            bit: flag.bit,
            name: flag.name,
            meaning: flag.meaning,
        }
    }
}

#[derive(Debug, Serialize)]
struct JsonFlags {
    flags: Vec<JsonFlag>,
}

pub(crate) fn run(args: FlagsArgs) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    write(&mut out, args.output)?;
    out.flush()?;
    Ok(())
}

fn write(out: &mut impl Write, format: OutputFormat) -> std::io::Result<()> {
    match format {
        OutputFormat::Table => {
            let columns = [
                Column {
                    header: "BIT",
                    max_width: 3,
                },
                Column {
                    header: "FLAG",
                    max_width: 5,
                },
                Column {
                    header: "MEANING",
                    max_width: 120,
                },
            ];
            let rows: Vec<Vec<String>> = FLAGS
                .iter()
                .map(|flag| vec![flag.bit.to_string(), flag.name.into(), flag.meaning.into()])
                .collect();
            output::write_table(out, &columns, &rows)
        }
        OutputFormat::Json => {
            let flags = FLAGS.iter().map(JsonFlag::from).collect();
            output::write_json(out, &JsonFlags { flags })
        }
        OutputFormat::Jsonl => output::write_jsonl(out, FLAGS.iter().map(JsonFlag::from)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_flag() {
        let mut out = Vec::new();
        write(&mut out, OutputFormat::Table).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), FLAGS.len() + 1);
        assert!(text.contains("\n7    UO     upstream overflow: a circuit breaker"));
    }

    #[test]
    fn jsonl_one_per_flag() {
        let mut out = Vec::new();
        write(&mut out, OutputFormat::Jsonl).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["name"], "LH");
    }
}
