//! What checking one bearer token costs: signs a token with a fresh
//! development key (Ed25519), then verifies it N times through the same
//! `Verifier` the guard uses, and prints the mean in microseconds.
//! Usage: token_cost [N, default 20000]

use std::time::{Duration, Instant};

use app::security::{DevKey, KeySource, Verifier};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let rounds: u32 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("key.pem");
    let token = DevKey::open(&path)?.token(
        "bench",
        &["laptops:write".to_owned()],
        Duration::from_secs(3600),
    )?;
    let verifier = Verifier::open(&KeySource::Development(path), None, None).await?;
    for _ in 0..1000 {
        verifier.verify(&token).await.map_err(anyhow::Error::msg)?;
    }
    let started = Instant::now();
    for _ in 0..rounds {
        verifier.verify(&token).await.map_err(anyhow::Error::msg)?;
    }
    let mean = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("EdDSA token check: {mean:.1} µs (mean of {rounds})");
    Ok(())
}
