//! Manifests: YAML documents loaded, validated and resolved into the
//! desired state.
