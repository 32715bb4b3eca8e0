//! The compiler's messages for wiring mistakes point at the fix; each case's expected output is
//! in `tests/ui/*.stderr` (regenerate with `TRYBUILD=overwrite`, then read the diff).

#[test]
fn wiring_mistakes_fail_to_compile_with_messages_that_name_the_fix() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
