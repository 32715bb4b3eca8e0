//! Prints the last criterion run as Markdown tables of ratios against each group's baselines.
//!
//! `criterion-ratios target/criterion`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/criterion"), PathBuf::from);
    match buvar_bench::criterion::read(&dir) {
        Ok(groups) => {
            print!("{}", buvar_bench::criterion::markdown(&groups));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
