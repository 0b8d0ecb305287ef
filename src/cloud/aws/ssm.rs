//! SSM Parameter Store: the values of the parameters fleets take their
//! image from (`image: ssm:NAME`), read when planning with GetParameters,
//! ten names a call (the most it takes), for every fleet at once.

use super::AwsCloud;
use super::error::sdk_error;
use crate::cloud::{CloudError, answered_id};
use converge_core::ids::ParameterName;
use std::collections::BTreeMap;

/// The most names one GetParameters call takes ("Names … Maximum number
/// of 10 items",
/// <https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameters.html>).
const MAX_NAMES: usize = 10;

impl AwsCloud {
    /// The parameters' values; names SSM lists as `InvalidParameters` (it
    /// does not know them) are left out.
    pub(super) async fn get_parameters(
        &self,
        names: &[ParameterName],
    ) -> Result<BTreeMap<ParameterName, String>, CloudError> {
        const OP: &str = "GetParameters";
        let mut out = BTreeMap::new();
        for batch in names.chunks(MAX_NAMES) {
            let answer = self
                .ssm
                .get_parameters()
                .set_names(Some(batch.iter().map(ToString::to_string).collect()))
                .send()
                .await
                .map_err(|e| sdk_error(OP, e))?;
            for p in answer.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    out.insert(answered_id(OP, name)?, value.to_owned());
                }
            }
        }
        Ok(out)
    }
}
