//! Compiles `proto/meshwhy/v1/*.proto` with protox (pure Rust, no system protoc) into OUT_DIR.
//! Service stubs are generated only for the enabled `client`/`server` features, so the wasm
//! filter links prost alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/meshwhy/v1/record.proto",
        "proto/meshwhy/v1/ingest.proto",
        "proto/meshwhy/v1/query.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(std::env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(std::env::var_os("CARGO_FEATURE_SERVER").is_some())
        .compile_fds(descriptors)?;
    Ok(())
}
