//! Compiles the gRPC example's `.proto` with the `grpc` feature only, so that nobody without
//! it needs protoc.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "grpc")]
    grpc_example();
}

#[cfg(feature = "grpc")]
fn grpc_example() {
    println!("cargo::rerun-if-changed=proto/greeter.proto");
    if let Err(err) = tonic_prost_build::configure()
        .build_client(false)
        .compile_protos(&["proto/greeter.proto"], &["proto"])
    {
        // The usual cause is a missing protoc: say where to get it.
        println!(
            "cargo::error=compiling proto/greeter.proto failed: {err}; the `grpc` feature needs \
             protoc (Debian/Ubuntu: apt-get install protobuf-compiler; or set PROTOC to its path)"
        );
    }
}
