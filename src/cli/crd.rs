//! `lopper crd`: prints the CustomResourceDefinitions (CurveChunk, Study, Trial) as
//! multi-document YAML.
//!
//! `crds/` holds the same output (one file per CRD); `tests/crds.rs` fails when it is stale.

use std::process::ExitCode;

/// Print the CustomResourceDefinitions (CurveChunk, Study, Trial) as YAML.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print only this kind (`CurveChunk`, `Study` or `Trial`); default all.
    #[arg(long)]
    pub kind: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let crds: Vec<_> = crate::crd::crds()
        .into_iter()
        .filter(|c| {
            args.kind
                .as_deref()
                .is_none_or(|k| c.spec.names.kind.eq_ignore_ascii_case(k))
        })
        .collect();
    anyhow::ensure!(!crds.is_empty(), "no CRD of kind {:?}", args.kind);
    print!("{}", crate::crd::to_yaml(&crds));
    Ok(ExitCode::SUCCESS)
}
