//! Saved plans (`plan --out FILE`, `apply --plan FILE`). A saved plan holds
//! the desired state it was made from (environment values left out), a
//! digest of those values, and the plan. Applying it re-observes the
//! cloud and plans again for the same moment: if the steps differ, the
//! world changed since the plan was made and the apply is refused.

use converge_core::desired::{Desired, Secret, TemplatePart};
use converge_core::ids::ResourceName;
use converge_core::plan::Plan;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The saved file's shape version.
pub const PLAN_FILE_VERSION: u32 = 1;

/// A plan as saved to a file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanFile {
    /// Always `converge-plan`.
    pub kind: String,
    /// [`PLAN_FILE_VERSION`].
    pub version: u32,
    /// The desired state the plan was made from (without secrets).
    pub desired: Desired,
    /// A digest of the environment values the desired state read.
    pub env_digest: String,
    /// The plan.
    pub plan: Plan,
    /// The fleets `--replace` named: a fresh plan for `apply --plan`
    /// replaces them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<ResourceName>,
}

impl PlanFile {
    /// What the saved plan was asked for: its fleets to replace and its
    /// targets, for the fresh plan `apply --plan` compares it with.
    pub fn request(&self) -> crate::commands::PlanRequest {
        crate::commands::PlanRequest {
            replace_fleets: self.replace.iter().cloned().collect(),
            targets: self.plan.targets.iter().cloned().collect(),
        }
    }
}

/// Why a saved plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// It could not be read.
    #[error("cannot read plan file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a converge plan of a version this build reads.
    #[error("{path} is not a converge plan file this version can read: {reason}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// An environment variable the plan read is unset now.
    #[error("plan file {path}: environment variable {name} is not set")]
    MissingEnv {
        /// The file.
        path: String,
        /// The variable.
        name: String,
    },
    /// Environment values differ from when the plan was made.
    #[error(
        "plan file {path}: environment values used by the manifests changed since the plan was made; run plan again"
    )]
    EnvChanged {
        /// The file.
        path: String,
    },
}

/// The digest of every environment value a desired state holds.
pub fn env_digest(d: &Desired) -> String {
    let mut h = Sha256::new();
    for (name, fleet) in &d.fleets {
        for p in &fleet.user_data.parts {
            if let TemplatePart::Env { name: var, value } = p {
                for part in [name.as_str(), var.as_str(), value.expose()] {
                    h.update((part.len() as u64).to_le_bytes());
                    h.update(part.as_bytes());
                }
            }
        }
    }
    hex::encode(h.finalize())
}

impl PlanFile {
    /// Wraps a plan for saving.
    pub fn new(desired: &Desired, plan: &Plan) -> Self {
        Self {
            kind: "converge-plan".into(),
            version: PLAN_FILE_VERSION,
            desired: desired.clone(),
            env_digest: env_digest(desired),
            plan: plan.clone(),
            replace: Vec::new(),
        }
    }

    /// Reads a saved plan and puts the environment values back into its
    /// desired state, checking they are the ones it was made with.
    pub fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PlanFile, PlanFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut file: PlanFile =
            serde_json::from_str(&text).map_err(|e| PlanFileError::Format {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        if file.kind != "converge-plan" || file.version != PLAN_FILE_VERSION {
            return Err(PlanFileError::Format {
                path: shown,
                reason: format!("kind {:?} version {}", file.kind, file.version),
            });
        }
        for fleet in file.desired.fleets.values_mut() {
            for p in &mut fleet.user_data.parts {
                if let TemplatePart::Env { name, value } = p {
                    let v = env(name).ok_or_else(|| PlanFileError::MissingEnv {
                        path: shown.clone(),
                        name: name.clone(),
                    })?;
                    *value = Secret::new(v);
                }
            }
        }
        if env_digest(&file.desired) != file.env_digest {
            return Err(PlanFileError::EnvChanged { path: shown });
        }
        Ok(file)
    }

    /// Whether a freshly made plan has the same steps as the saved one.
    pub fn matches(&self, fresh: &Plan) -> bool {
        let a = serde_json::to_value(&self.plan.graph);
        let b = serde_json::to_value(&fresh.graph);
        matches!((a, b), (Ok(a), Ok(b)) if a == b)
    }
}
