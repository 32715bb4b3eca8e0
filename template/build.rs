//! Compiles `proto/` into Rust with protoc (Debian/Ubuntu: `apt-get install
//! protobuf-compiler`, macOS: `brew install protobuf`, or set `PROTOC` to its path): the
//! server for the service, the client for its tests.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure().compile_protos(&["proto/greeter.proto"], &["proto"])?;
    Ok(())
}
