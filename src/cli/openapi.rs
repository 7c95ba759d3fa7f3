//! `crisp-gateway openapi`: writes the generated documents, or checks the committed ones.

use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::docs;

#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// The directory to write `crisp-gateway.json` and `crisp-gateway.postman.json` into.
    #[arg(long, default_value = docs::DIR)]
    out: PathBuf,
    /// Write nothing; fail when the files there differ from what this binary generates.
    #[arg(long)]
    check: bool,
}

pub fn run(args: &OpenapiArgs) -> CliResult {
    if args.check {
        let stale = docs::stale(&args.out);
        if stale.is_empty() {
            eprintln!("{} is up to date", args.out.display());
            return Ok(());
        }
        let names: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "{} differ from the generated documents; run `crisp-gateway openapi` and commit them",
            names.join(", ")
        )
        .into());
    }
    let written = docs::write(&args.out)
        .map_err(|e| format!("cannot write into {}: {e}", args.out.display()))?;
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
