//! The JSON Schemas under `schemas/` are generated from the manifest types;
//! this test fails when they are out of date. `UPDATE_SCHEMAS=1 cargo test
//! --test it schemas::` rewrites them (as does `converge schema --out schemas`).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

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
         (or `UPDATE_SCHEMAS=1 cargo test --test it schemas::`) and commit the result."
    );
}

#[test]
fn every_kind_has_a_schema_describing_its_document() {
    let schemas = converge::manifest::schemas();
    let names: Vec<&str> = schemas.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names[..9],
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
    let (all, kinds) = schemas.split_last().unwrap();
    for (file, schema) in kinds {
        let kind = file.trim_end_matches(".schema.json");
        assert_eq!(schema["properties"]["kind"]["const"], kind, "{file}");
        assert_eq!(schema["additionalProperties"], false, "{file}");
        assert!(schema["description"].is_string(), "{file}");
        assert_eq!(schema["$id"], file.as_str(), "{file}");
    }
    // The combined schema: one branch per kind, by `$id`, and the kinds'
    // names for `kind`.
    assert_eq!(all.0, "converge.schema.json");
    let refs: Vec<&str> = all.1["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["$ref"].as_str().unwrap())
        .collect();
    let files: Vec<&str> = kinds.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(refs, files);
    let enum_kinds: Vec<&str> = all.1["properties"]["kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let file_kinds: Vec<&str> = files
        .iter()
        .map(|f| f.trim_end_matches(".schema.json"))
        .collect();
    assert_eq!(enum_kinds, file_kinds);
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

/// The example stack's documents are valid against `converge.schema.json`
/// (with its siblings resolved by `$id`), and a wrong one is not, checked
/// with Python's `jsonschema`, the validator behind common editor tooling,
/// from the virtualenv `scripts/moto.sh` installs (moto depends on it).
#[test]
fn example_documents_validate_against_the_combined_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var_os("CONVERGE_REQUIRE_MOTO").is_none(),
            "CONVERGE_REQUIRE_MOTO is set but .venv (scripts/moto.sh) is missing"
        );
        eprintln!("skipped: no .venv; `source scripts/moto.sh start` installs it");
        return;
    }
    let script = r#"
import glob, json, sys, yaml, jsonschema
from referencing import Registry, Resource
reg = Registry()
for f in glob.glob("schemas/*.schema.json"):
    d = json.load(open(f))
    reg = reg.with_resource(d["$id"], Resource.from_contents(d))
v = jsonschema.Draft202012Validator(json.load(open("schemas/converge.schema.json")), registry=reg)
bad = 0
docs = 0
for f in sorted(glob.glob("manifests/smallpayroll/*.yaml")):
    for doc in yaml.safe_load_all(open(f)):
        if doc is None:
            continue
        docs += 1
        for e in v.iter_errors(doc):
            bad += 1
            print(f, doc.get("kind"), doc.get("name"), e.message[:200])
wrong = {"kind": "Volume", "name": "x", "spec": {"sizeGiB": "big", "zone": "us-east-1a"}}
if v.is_valid(wrong) or v.is_valid({"kind": "Nonsense", "name": "x"}):
    print("a wrong document was accepted")
    bad += 1
print(f"{docs} documents, {bad} problems")
sys.exit(1 if bad or docs == 0 else 0)
"#;
    let out = std::process::Command::new(&python)
        .current_dir(root)
        .args(["-c", script])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" documents, 0 problems"), "{text}");
}
