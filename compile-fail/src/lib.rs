//! Nothing to use: the crate holds `tests/compile_fail.rs`, whose cases in `tests/ui/` show the
//! compiler's messages for wiring mistakes with buvar-kit.
