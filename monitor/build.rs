//! Builds the eBPF object with aya-build so that `tlsmon` embeds it and is a
//! single file to copy to a proxy host.
fn main() -> anyhow::Result<()> {
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "monitor-ebpf",
            root_dir: "../monitor-ebpf",
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
