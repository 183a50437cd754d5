//! Compiles the benchmark's subset of Envoy's access-log service proto with protox (pure Rust,
//! no system protoc) into OUT_DIR: server stubs only, for the benchmark's ALS sink.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "proto/envoy/service/accesslog/v3/als.proto";
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([file], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
