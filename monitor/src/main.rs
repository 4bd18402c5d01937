mod kernel;
fn main() -> anyhow::Result<()> {
    kernel::preflight()?;
    let mut e = kernel::load(1 << 20)?;
    kernel::attach(&mut e, "lo")?;
    println!("ok");
    Ok(())
}
