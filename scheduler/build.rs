//! Generates the cluster's gRPC code from `proto/cluster.proto` with a
//! protobuf compiler written in Rust (protox): a fresh machine builds weir
//! with cargo alone, without `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/cluster.proto");
    let descriptors = protox::compile(["cluster.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
