//! What checking one bearer token costs, through the `Verifier` the guard
//! uses, with a fresh development key (Ed25519): N distinct tokens checked
//! once each (the signature is verified), then one token checked N times
//! (remembered after the first). Prints the means in microseconds.
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
    let key = DevKey::open(&path)?;
    let scopes = ["laptops:write".to_owned()];
    let tokens = (0..rounds)
        .map(|n| key.token(&format!("client-{n}"), &scopes, Duration::from_secs(3600)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let verifier = Verifier::open(&KeySource::Development(path), None, None).await?;
    let started = Instant::now();
    for token in &tokens {
        verifier.verify(token).await.map_err(anyhow::Error::msg)?;
    }
    let first = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        verifier
            .verify(&tokens[0])
            .await
            .map_err(anyhow::Error::msg)?;
    }
    let again = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!(
        "EdDSA token check: {first:.1} µs the first time, {again:.2} µs when remembered (means of {rounds})"
    );
    Ok(())
}
