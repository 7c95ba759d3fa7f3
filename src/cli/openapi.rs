//! `crisp-gateway openapi`: writes the generated documents, or checks the committed ones.

use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::docs;

#[derive(Debug, Args)]
pub struct OpenapiArgs {
    /// The directory to write `crisp-gateway.json`, `crisp-gateway.postman.json` and
    /// `crisp-gateway-admin.json` into.
    #[arg(long, default_value = docs::DIR)]
    out: PathBuf,
    /// Write nothing; fail when the files there differ from what this binary generates.
    #[arg(long)]
    check: bool,
}

pub fn run(args: &OpenapiArgs) -> CliResult {
    let admin = args.out.join(crate::console::api::openapi::FILE);
    let admin_text = crate::console::api::openapi::JSON.as_str();
    if args.check {
        let mut stale = docs::stale(&args.out);
        if std::fs::read_to_string(&admin).ok().as_deref() != Some(admin_text) {
            stale.push(admin.clone());
        }
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
    let mut written = docs::write(&args.out)
        .map_err(|e| format!("cannot write into {}: {e}", args.out.display()))?;
    std::fs::write(&admin, admin_text)
        .map_err(|e| format!("cannot write {}: {e}", admin.display()))?;
    written.push(admin);
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
