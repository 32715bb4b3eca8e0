//! Compiles buvar-axum's gRPC example `.proto` (server and client) for the example's binary and
//! `tests/grpc.rs`. Sets `cgroup_v1_cpu_writable` when a child cgroup can be made under the
//! cgroup v1 `cpu` controller (root on a cgroup v1 machine), so the CPU quota test runs where
//! it can and is ignored, with the reason, where it cannot.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cgroup_v1_cpu_writable)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../buvar-axum/proto/greeter.proto");
    tonic_prost_build::configure()
        .compile_protos(
            &["../buvar-axum/proto/greeter.proto"],
            &["../buvar-axum/proto"],
        )
        .expect("protoc compiles the gRPC example's proto (Debian: protobuf-compiler)");
    let probe = std::path::Path::new("/sys/fs/cgroup/cpu")
        .join(format!("buvar-build-probe-{}", std::process::id()));
    if std::fs::create_dir(&probe).is_ok() {
        let _ = std::fs::remove_dir(&probe);
        println!("cargo::rustc-cfg=cgroup_v1_cpu_writable");
    }
}
