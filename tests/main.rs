//! converge's end-to-end tests, one module per former test file, in one
//! test binary: the AWS SDKs are linked once rather than once per file.
//! Run one file's tests with `cargo test --test it <module>::`.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

#[macro_use]
mod support;

mod aws_cli;
mod aws_e2e;
mod aws_elb;
mod aws_faults;
mod cdn_aws;
mod cdn_content;
mod certificate_aws;
mod certificate_local;
mod chaos;
mod cli;
mod convergence;
mod deploy;
mod dns_aws;
mod dns_local;
mod executor;
mod function_length;
mod fuzz_manifests;
mod lease_aws;
mod local_cloud;
mod local_elbv2;
mod local_network;
mod local_rolling;
mod reconcile;
mod reconcile_aws;
mod schemas;
mod validate;
mod validate_balancer;
mod validate_network;
