//! `render-template DESTINATION NAME [KEY=VALUE...]`: renders this workspace's service template
//! into `DESTINATION/NAME` with cargo-generate's library, for `.ci/run`'s linters.

use std::path::PathBuf;
use std::process::ExitCode;

use buvar_tests::template::{TemplateSource, render, template_dir};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(destination), Some(name)) = (args.next(), args.next()) else {
        eprintln!("usage: render-template DESTINATION NAME [KEY=VALUE...]");
        return ExitCode::from(2);
    };
    let defines: Vec<String> = args.collect();
    let mut pairs = Vec::new();
    for define in &defines {
        let Some(pair) = define.split_once('=') else {
            eprintln!("error: `{define}` is not KEY=VALUE");
            return ExitCode::from(2);
        };
        pairs.push(pair);
    }
    match render(
        &TemplateSource::Path(template_dir()),
        &name,
        &PathBuf::from(destination),
        &pairs,
    ) {
        Ok(dir) => {
            println!("{}", dir.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: cannot render the template: {err:#}");
            ExitCode::FAILURE
        }
    }
}
