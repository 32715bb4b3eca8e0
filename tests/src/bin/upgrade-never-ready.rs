//! The binary-upgrade test program, build `NeverReady`; see [`buvar_tests::upgrade`].

fn main() -> std::process::ExitCode {
    buvar_tests::upgrade::main(buvar_tests::upgrade::Build::NeverReady)
}
