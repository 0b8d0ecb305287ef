//! converge as a library: load a stack's manifests, plan them against an
//! in-memory local cloud, apply the plan, and show that a second plan has
//! nothing left to do.
//!
//! ```text
//! cargo run --example plan_in_memory -- manifests/smallpayroll
//! ```

use anyhow::{Context as _, Result, anyhow};
use converge::apply::{ApplyOptions, Quiet, execute};
use converge::cloud::Cloud;
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig};
use converge::commands::observe_and_plan;
use converge::core::render::{self, TextOptions};
use converge::manifest;
use converge::sys::SystemClock;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("manifests/smallpayroll"));
    // Manifests: every error at once, each naming file, resource and field.
    let desired = manifest::load(&dir, &|name| std::env::var(name).ok())
        .map_err(|diags| anyhow!("{diags}"))?
        .desired;

    // A simulated region that lives only as long as this process.
    let config = LocalConfig {
        region: desired.region.clone(),
        delays: Delays::zero(),
        faults: Faults::default(),
    };
    let cloud: Arc<dyn Cloud> = Arc::new(LocalCloud::in_memory(config, Arc::new(SystemClock)));

    let at = jiff::Timestamp::now();
    let (_, plan) = observe_and_plan(cloud.as_ref(), &desired, at, &BTreeMap::new())
        .await
        .context("planning")?;
    print!("{}", render::text(&plan, &TextOptions::default()));

    let report = execute(
        cloud.clone(),
        &plan,
        ApplyOptions::default(),
        Arc::new(Quiet),
    )
    .await;
    println!(
        "\napplied: {} done, {} failed",
        report.done(),
        report.failed()
    );

    let (_, again) = observe_and_plan(cloud.as_ref(), &desired, at, &BTreeMap::new()).await?;
    println!("second plan has changes: {}", again.has_changes());
    Ok(())
}
