//! The JSON Schemas under `schemas/` are generated from the manifest types;
//! this test fails when they are out of date. `UPDATE_SCHEMAS=1 cargo test
//! --test schemas` rewrites them (as does `converge schema --out schemas`).

use std::collections::BTreeSet;
use std::path::Path;

/// The file text `converge schema --out` writes.
fn render(schema: &serde_json::Value) -> String {
    serde_json::to_string_pretty(schema).expect("a schema serializes") + "\n"
}

#[test]
fn committed_schemas_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let schemas = converge::manifest::schemas();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(&dir).expect("create schemas/");
        for (file, schema) in &schemas {
            std::fs::write(dir.join(file), render(schema)).expect("write a schema");
        }
    }
    let mut stale = Vec::new();
    for (file, schema) in &schemas {
        let path = dir.join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != render(schema) {
            stale.push(file.clone());
        }
    }
    let expected: BTreeSet<String> = schemas.iter().map(|(f, _)| f.clone()).collect();
    let extra: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".schema.json") && !expected.contains(f))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "schemas/ is out of date with the manifest types (changed or missing: {stale:?}; \
         no longer generated: {extra:?}).\nRun `converge schema --out schemas` \
         (or `UPDATE_SCHEMAS=1 cargo test --test schemas`) and commit the result."
    );
}

#[test]
fn every_kind_has_a_schema_describing_its_document() {
    let schemas = converge::manifest::schemas();
    let names: Vec<&str> = schemas.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "Stack.schema.json",
            "Network.schema.json",
            "KeyPair.schema.json",
            "SecurityGroup.schema.json",
            "Fleet.schema.json",
            "Volume.schema.json",
            "Balancer.schema.json",
            "Bucket.schema.json",
            "Cdn.schema.json",
        ]
    );
    for (file, schema) in &schemas {
        let kind = file.trim_end_matches(".schema.json");
        assert_eq!(schema["properties"]["kind"]["const"], kind, "{file}");
        assert_eq!(schema["additionalProperties"], false, "{file}");
        assert!(schema["description"].is_string(), "{file}");
    }
    let fleet = &schemas[4].1;
    let spec = &fleet["$defs"]["FleetSpec"];
    assert_eq!(spec["additionalProperties"], false);
    for field in ["instanceType", "keyPair", "securityGroups", "userData"] {
        assert!(spec["properties"][field].is_object(), "FleetSpec.{field}");
    }
    let cdn = &schemas[8].1;
    let logging = &cdn["$defs"]["Logging"]["oneOf"];
    assert_eq!(logging[0]["const"], false, "{cdn:#}");
    let volume = &schemas[5].1;
    assert!(volume["$defs"]["VolumeSpec"]["properties"]["sizeGiB"].is_object());
    let network = &schemas[1].1;
    for field in ["cidr", "vpc", "subnets", "deletionPolicy"] {
        assert!(
            network["$defs"]["NetworkSpec"]["properties"][field].is_object(),
            "NetworkSpec.{field}"
        );
    }
}
