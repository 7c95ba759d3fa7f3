//! `crisp-gateway usage`: calls per key, action or day, as a table, JSON or CSV.

use std::sync::Arc;

use clap::{Args, ValueEnum};

use crate::admin::usage::{UsageBy, UsageLine, UsageQuery, report};
use crate::store::Store;

use super::{CliError, CliResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Key,
    Action,
    Day,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this workspace's calls.
    #[arg(long)]
    workspace: Option<String>,
    /// The UTC days overlapping this recent window: 24h, 7d, 30d.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    since: String,
    /// Add the calls up per key, per action or per UTC day (within each workspace).
    #[arg(long, value_enum, default_value = "key")]
    by: By,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

const COUNTS: [&str; 8] = [
    "calls",
    "refused",
    "failed",
    "crisp_2xx",
    "crisp_4xx",
    "crisp_5xx",
    "crisp_none",
    "upstream_ms",
];

pub async fn run(store: &Arc<dyn Store>, args: UsageArgs) -> CliResult {
    let query = UsageQuery {
        workspace: args.workspace,
        since: crate::kernel::clock::parse_duration(&args.since)?,
        by: match args.by {
            By::Key => UsageBy::Key,
            By::Action => UsageBy::Action,
            By::Day => UsageBy::Day,
        },
    };
    let lines = report(store, &query)
        .await
        .map_err(|e| CliError::Message(e.to_string()))?;
    match args.format {
        Format::Json => {
            let json = serde_json::to_string_pretty(&lines)
                .map_err(|e| CliError::Message(e.to_string()))?;
            println!("{json}");
        }
        Format::Csv => {
            let mut header = vec!["workspace"];
            header.extend(group_columns(query.by));
            header.extend(COUNTS);
            println!("{}", header.join(","));
            for line in &lines {
                let mut cells: Vec<String> = vec![csv_cell(&line.workspace)];
                cells.extend(group_cells(query.by, line).iter().map(|c| csv_cell(c)));
                cells.extend(counts(line).iter().map(i64::to_string));
                println!("{}", cells.join(","));
            }
        }
        Format::Table => {
            let group = group_columns(query.by);
            let mut header = format!("{:<16}", "WORKSPACE");
            for name in &group {
                header.push_str(&format!(
                    " {:<width$}",
                    name.to_uppercase(),
                    width = width(name)
                ));
            }
            for name in COUNTS {
                header.push_str(&format!(" {:>11}", name.to_uppercase()));
            }
            println!("{}", header.trim_end());
            for line in &lines {
                let mut row = format!("{:<16}", line.workspace);
                for (name, cell) in group.iter().zip(group_cells(query.by, line)) {
                    row.push_str(&format!(" {cell:<width$}", width = width(name)));
                }
                for n in counts(line) {
                    row.push_str(&format!(" {n:>11}"));
                }
                println!("{row}");
            }
            if lines.is_empty() {
                eprintln!(
                    "no calls counted since {} (counts reach the database every few seconds)",
                    args.since
                );
            }
        }
    }
    Ok(())
}

fn width(column: &str) -> usize {
    match column {
        "action" => 40,
        "day" => 10,
        _ => 18,
    }
}

fn group_columns(by: UsageBy) -> Vec<&'static str> {
    match by {
        UsageBy::Key => vec!["key_id", "key_name"],
        UsageBy::Action => vec!["action"],
        UsageBy::Day => vec!["day"],
    }
}

fn group_cells(by: UsageBy, line: &UsageLine) -> Vec<String> {
    let text = |v: Option<&str>| v.unwrap_or("-").to_owned();
    match by {
        UsageBy::Key => vec![
            text(line.key_id.as_ref().map(|k| k.as_str())),
            text(line.key_name.as_deref()),
        ],
        UsageBy::Action => vec![text(line.action.as_deref())],
        UsageBy::Day => vec![text(line.day.as_deref())],
    }
}

fn counts(line: &UsageLine) -> [i64; 8] {
    let c = &line.counts;
    [
        c.calls,
        c.refused,
        c.failed,
        c.crisp_2xx,
        c.crisp_4xx,
        c.crisp_5xx,
        c.crisp_none,
        c.upstream_ms,
    ]
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break (a key's name may).
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
