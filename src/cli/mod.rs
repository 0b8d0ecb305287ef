//! Argument parsing and command dispatch.

mod meta;
mod output;
mod scope;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use converge::apply::{self, ApplyOptions};
use converge::cloud::Cloud;
use converge::cloud::aws::{AwsCloud, AwsOptions};
use converge::cloud::local::{Delays, Faults, LocalCloud, LocalConfig, LocalError};
use converge::commands::planfile::PlanFile;
use converge::commands::{PlanRequest, observe_and_plan, observe_and_plan_requested, outputs};
use converge::core::desired::Desired;
use converge::core::ids::{ResourceName, Zone};
use converge::core::net::Ipv4Cidr;
use converge::core::observed::Observed;
use converge::core::render;
use converge::lease::s3::S3Lease;
use converge::lease::{Holding, Lease, LocalLease};
use converge::manifest;
use converge::reconcile::{
    HttpClient, HttpConfig, Manifests, ReconcileOptions, Reconciler,
    metrics::{self, Metrics},
};
use converge::sys::SystemClock;
use jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// converge: declare AWS resources in YAML, see the plan, apply it.
#[derive(Debug, Parser)]
#[command(
    name = "converge",
    version = meta::LONG_VERSION,
    about,
    long_about = None,
    after_help = "Examples:
  converge validate manifests/smallpayroll
  converge plan manifests/smallpayroll
  converge apply manifests/smallpayroll
  converge --cloud aws plan manifests/smallpayroll --stats
Environment: CONVERGE_CLOUD, CONVERGE_STATE_DIR, CONVERGE_LOCAL_DELAYS, CONVERGE_LOCAL_FAULTS,
CONVERGE_LEASE_BUCKET, AWS_ENDPOINT_URL and the AWS SDK's variables, HTTPS_PROXY/HTTP_PROXY/NO_PROXY,
SSL_CERT_FILE, NO_COLOR, CLICOLOR_FORCE, and CONVERGE_LOG (a tracing filter, e.g. info,converge::apply=debug)."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Which cloud to talk to.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "CONVERGE_CLOUD",
        default_value = "local"
    )]
    cloud: CloudKind,
    /// Where the local cloud keeps its state.
    #[arg(
        long,
        global = true,
        env = "CONVERGE_STATE_DIR",
        default_value = ".converge"
    )]
    state_dir: PathBuf,
    /// Local cloud faults, e.g. `throttle=0.2,lag=3s,seed=7` (see docs/local-cloud.md).
    #[arg(long, global = true, env = "CONVERGE_LOCAL_FAULTS")]
    local_faults: Option<String>,
    /// Local cloud delays, e.g. `zero` or `boot=1s,volume=0s` (see docs/local-cloud.md).
    #[arg(long, global = true, env = "CONVERGE_LOCAL_DELAYS")]
    local_delays: Option<String>,
    /// AWS region (--cloud aws); else the Stack's `spec.region`.
    #[arg(long, global = true)]
    region: Option<String>,
    /// AWS shared-config profile (--cloud aws); else `AWS_PROFILE` or `default`.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// A custom AWS endpoint for every service (--cloud aws), e.g. a moto
    /// server or LocalStack.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// The S3 bucket holding the stack's lease on AWS (one writer per
    /// stack); created if missing. Without it, `--cloud aws` takes no lease.
    #[arg(long, global = true, env = "CONVERGE_LEASE_BUCKET")]
    lease_bucket: Option<String>,
    /// How long to wait for the stack's lease when another apply or
    /// reconciler holds it (e.g. 5m); by default, exit at once.
    #[arg(long, global = true, default_value = "0", value_parser = parse_duration_arg)]
    lease_wait: Duration,
    /// Print the API calls made, by service and operation, on stderr.
    #[arg(long, global = true)]
    stats: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Colours in plans and logs: `auto` (a terminal, unless `NO_COLOR` is
    /// set; `CLICOLOR_FORCE` forces them), `always` or `never`.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    color: meta::ColorChoice,
    /// More logs (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CloudKind {
    /// The embedded local cloud (default; no AWS account needed).
    Local,
    /// Amazon Web Services.
    Aws,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Markdown,
    Json,
    /// The step graph as Graphviz (`| dot -Tsvg > plan.svg`).
    Dot,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a stack's manifests without touching the cloud.
    #[command(after_help = "Examples:
  converge validate manifests/smallpayroll
  converge validate .                              # the current directory")]
    Validate {
        /// The stack directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Show what would change.
    Plan(PlanArgs),
    /// Make the cloud match the manifests.
    Apply(ApplyArgs),
    /// Remove the stack, keeping what deletion policies retain.
    Destroy(DestroyArgs),
    /// Keep the stack converged: observe, plan and apply every interval,
    /// following schedules, the autoscaler, health checks and snapshot
    /// schedules.
    Reconcile(ReconcileArgs),
    /// Write the JSON Schemas of the manifest kinds.
    #[command(after_help = "Examples:
  converge schema --out schemas                    # <Kind>.schema.json and converge.schema.json
  converge schema | jq 'keys'")]
    Schema {
        /// Directory to write `<Kind>.schema.json` files to; without it,
        /// all schemas are printed as one JSON object.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the live stack's outputs (balancer and CDN names, fleet
    /// addresses), like `terraform output`.
    Output(OutputArgs),
    /// Print converge's version, commit and build date.
    #[command(after_help = "Examples:
  converge version
  converge version --json | jq -r .commit")]
    Version {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (e.g. `converge completions bash >
    /// /etc/bash_completion.d/converge`).
    #[command(after_help = "Examples:
  converge completions bash > ~/.local/share/bash-completion/completions/converge
  converge completions zsh > \"${fpath[1]}/_converge\"
  converge completions fish > ~/.config/fish/completions/converge.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages, one per command (`converge.1`, `converge-plan.1`,
    /// …), into a directory.
    #[command(after_help = "Examples:
  converge man --out /usr/local/share/man/man1 && man converge-plan")]
    Man {
        /// The directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Inspect and disturb the local cloud.
    #[command(after_help = "Examples:
  converge local ls
  converge local terminate i-0123456789abcdef0
  converge local add vpc 10.1.0.0/16 --subnet us-east-1a=10.1.1.0/24
  converge local add parameter /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64 ami-147f977d
  converge local remove default-vpc")]
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  converge plan manifests/smallpayroll
  converge plan manifests/smallpayroll --format markdown --detailed-exitcode
  converge plan manifests/smallpayroll --at 2026-03-09T08:30:00-04:00
  converge plan manifests/smallpayroll --out plan.json && converge apply --plan plan.json
  converge plan manifests/smallpayroll --format dot | dot -Tsvg > plan.svg")]
struct PlanArgs {
    /// The stack directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Exit 0 when there are no changes, 2 when there are (blocked or
    /// held-back changes included: the stack differs from the manifests),
    /// 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Save the plan to this file, for `apply --plan`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Plan for this moment (RFC 3339 with an offset, e.g.
    /// 2026-03-09T08:30:00-04:00) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Replace every instance of this fleet, rolling within its
    /// `update` budget, although nothing changed (`Fleet/NAME`;
    /// repeatable).
    #[arg(long = "replace", value_name = "Fleet/NAME")]
    replace: Vec<String>,
    /// Plan only this resource and what it depends on (`Kind/NAME`;
    /// repeatable); the plan says it is partial.
    #[arg(long = "target", value_name = "Kind/NAME")]
    target: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  converge output manifests/smallpayroll
  converge output manifests/smallpayroll Balancer/web.dnsName
  converge output manifests/smallpayroll --json | jq -r '.\"Fleet/db.privateIp\"'")]
struct OutputArgs {
    /// The stack directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// One output (`Balancer/web.dnsName`): print only its value.
    name: Option<String>,
    /// As JSON: an object of all outputs, or the one value as a string.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  converge apply manifests/smallpayroll            # shows the plan, asks on a terminal
  converge apply manifests/smallpayroll --yes      # no question (CI, scripts)
  converge apply --plan plan.json --yes            # exactly a saved plan, refused if the world changed
  converge --cloud aws --profile prod apply manifests/smallpayroll")]
struct ApplyArgs {
    /// The stack directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Apply a plan saved with `plan --out` (refused if the world changed).
    #[arg(long, conflicts_with = "dir")]
    plan: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Steps run at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
    /// Apply for this moment's schedules (RFC 3339 with an offset).
    #[arg(long)]
    at: Option<String>,
    /// Replace every instance of this fleet, rolling within its
    /// `update` budget, although nothing changed (`Fleet/NAME`;
    /// repeatable).
    #[arg(long = "replace", value_name = "Fleet/NAME", conflicts_with = "plan")]
    replace: Vec<String>,
    /// Plan only this resource and what it depends on (`Kind/NAME`;
    /// repeatable); the plan says it is partial.
    #[arg(long = "target", value_name = "Kind/NAME", conflicts_with = "plan")]
    target: Vec<String>,
    /// Stay until every DNS cutover is done: apply what is due, wait
    /// until the next step is (an old TTL, a settle time), and again.
    #[arg(long, conflicts_with_all = ["plan", "at"])]
    wait: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  converge destroy manifests/smallpayroll          # keeps what deletion policies retain
  converge destroy manifests/smallpayroll --yes")]
struct DestroyArgs {
    /// The stack directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Steps run at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  converge reconcile manifests/smallpayroll --interval 30s --listen 127.0.0.1:9464
  converge reconcile manifests/smallpayroll --once
  converge --cloud aws --lease-bucket my-leases reconcile manifests/smallpayroll
Logs: CONVERGE_LOG takes a tracing filter (CONVERGE_LOG=info,converge::apply=debug).")]
struct ReconcileArgs {
    /// The stack directory (read again every pass).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Time between passes (with ±10% jitter), e.g. 30s, 5m; at least 1s.
    #[arg(long, default_value = "30s", value_parser = parse_interval_arg)]
    interval: Duration,
    /// Run one pass and exit (1 if it failed).
    #[arg(long)]
    once: bool,
    /// Serve /healthz and Prometheus /metrics on this address, e.g.
    /// 127.0.0.1:9464.
    #[arg(long)]
    listen: Option<String>,
    /// Steps run at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// List what the local cloud holds.
    Ls,
    /// Lose an instance, as a crash would.
    Terminate {
        /// The instance ID.
        id: String,
    },
    /// Make something that exists outside any stack; prints its new ID.
    Add {
        #[command(subcommand)]
        what: LocalAdd,
    },
    /// Remove something made with `converge local add`.
    Remove {
        #[command(subcommand)]
        what: LocalRemove,
    },
    /// Move the local cloud's clock forward for every later command
    /// (schedules, snapshot schedules, minUptime, DNS cutovers), such as
    /// `25h` or `90m`.
    Advance {
        /// How far, like `30m`, `24h` or `1h30m`.
        duration: String,
    },
}

/// What `converge local add` makes.
#[derive(Debug, Subcommand)]
enum LocalAdd {
    /// An IAM instance profile, for `instanceProfile`; prints its ARN.
    InstanceProfile {
        /// Its name.
        name: String,
    },
    /// An SSM parameter, created or overwritten (how a new AMI is
    /// published under the name an `image: ssm:NAME` reads); prints its
    /// version.
    Parameter {
        /// Its name (`/aws/service/ami-amazon-linux-latest/…`).
        name: String,
        /// Its value (an image ID for `image: ssm:NAME`).
        value: String,
    },
    /// An ACM certificate for these domain names, issued at once, for
    /// the `certificate` of HTTPS, SSL and TLS listeners; prints its ARN.
    Certificate {
        /// The domain names it covers (`example.com`, `*.example.com`),
        /// the first one its subject.
        #[arg(required = true, num_args = 1..)]
        domains: Vec<String>,
    },
    /// A public hosted zone, as an existing zone a DnsRecord can name
    /// (`zone: DOMAIN`); prints its ID.
    Zone {
        /// Its domain (`smallpayroll.example`).
        domain: String,
    },
    /// A record set without converge's ownership mark, as an "existing"
    /// record of a migration; prints it.
    Record {
        /// The zone: its domain or ID.
        zone: String,
        /// The record's full name (`www.smallpayroll.example`).
        name: String,
        /// A, AAAA, CNAME, TXT or MX.
        #[arg(value_name = "TYPE")]
        rtype: String,
        /// Its value(s).
        #[arg(required = true, num_args = 1..)]
        values: Vec<String>,
        /// Its TTL in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u32,
    },
    /// A VPC with subnets, as an existing VPC a Network can name
    /// (`spec.vpc`).
    Vpc {
        /// The VPC's IPv4 block (`10.1.0.0/16`).
        cidr: String,
        /// A subnet, `ZONE=CIDR` (`us-east-1a=10.1.1.0/24`); repeatable.
        #[arg(long = "subnet", value_name = "ZONE=CIDR")]
        subnets: Vec<String>,
    },
}

/// What `converge local remove` removes.
#[derive(Debug, Subcommand)]
enum LocalRemove {
    /// An IAM instance profile; prints its ARN.
    InstanceProfile {
        /// Its name.
        name: String,
    },
    /// An SSM parameter; prints its name.
    Parameter {
        /// Its name.
        name: String,
    },
    /// The region's default VPC (as an account whose landing zone deleted
    /// it); refused while anything is in it.
    DefaultVpc,
}

/// The exit code for "changes present" with `--detailed-exitcode`.
const EXIT_CHANGES: u8 = 2;

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let parsed = scope::command(<Cli as clap::CommandFactory>::command())
        .try_get_matches()
        .and_then(|m| {
            if let Err(message) = scope::check(&m) {
                let mut cmd = scope::command(<Cli as clap::CommandFactory>::command());
                return Err(cmd.error(clap::error::ErrorKind::ArgumentConflict, message));
            }
            <Cli as clap::FromArgMatches>::from_arg_matches(&m)
        });
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    meta::set_color(cli.global.color);
    init_logging(&cli.global, matches!(cli.command, Command::Reconcile(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = e
                .chain()
                .find_map(|c| c.downcast_ref::<converge::cloud::CloudError>())
                .and_then(|c| c.hint())
            {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}

/// `converge plan … | head` closes stdout early; `println!` then panics
/// ("failed printing to stdout: Broken pipe"). Like any Unix tool, exit
/// quietly instead (status 141, as SIGPIPE would give), leaving every
/// other panic to the default hook. (Resetting SIGPIPE itself would need
/// `unsafe` and would also apply to the loop's sockets.)
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Logs go to stderr: warnings by default, `-v` info, `-vv` debug;
/// `reconcile` also shows its own events (target `reconcile`) at info.
fn init_logging(g: &Global, reconciling: bool) {
    let level = match (g.verbose, reconciling) {
        // The SDK's credential chain warns about every provider it tries
        // before the one that works; converge reports the outcome itself.
        (0, false) => "warn,aws_config=error",
        (0, true) => "warn,aws_config=error,reconcile=info",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONVERGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let color = meta::stderr_colored();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(std::io::stderr);
    let _ = match g.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.without_time().try_init(),
    };
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Validate { dir } => {
            let desired = load(&dir)?;
            println!(
                "{}: stack {} is valid ({} resources)",
                dir.display(),
                desired.stack,
                count_resources(&desired)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { out } => schema(out.as_deref()),
        Command::Output(args) => output_cmd(g, args).await,
        Command::Version { json } => {
            println!("{}", meta::version(json));
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            meta::completions(
                shell,
                scope::command(<Cli as clap::CommandFactory>::command()),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => {
            let files = meta::man(
                &out,
                scope::command(<Cli as clap::CommandFactory>::command()),
            )?;
            eprintln!("Wrote {} man pages to {}", files.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => plan(g, args).await,
        Command::Apply(args) => apply_cmd(g, args).await,
        Command::Destroy(args) => destroy(g, args).await,
        Command::Reconcile(args) => reconcile(g, args).await,
        Command::Local { command } => local(g, command).await,
    }
}

fn count_resources(d: &Desired) -> usize {
    d.key_pairs.len()
        + d.security_groups.len()
        + d.fleets.len()
        + d.volumes.len()
        + d.balancers.len()
        + d.buckets.len()
        + d.cdns.len()
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load(dir: &Path) -> Result<Desired> {
    match manifest::load(dir, &env_var) {
        Ok(l) => Ok(l.desired),
        Err(diags) => Err(anyhow!("{diags}")),
    }
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    converge::core::duration::parse(s).map_err(|e| e.to_string())
}

/// A loop interval: a duration of at least a second, so the loop can
/// never spin.
fn parse_interval_arg(s: &str) -> Result<Duration, String> {
    converge::core::duration::parse_within(s, Duration::from_secs(1), Duration::MAX)
        .map_err(|e| e.to_string())
}

/// The resources `--target` names, each `Kind/NAME`.
fn targets(names: &[String]) -> Result<BTreeSet<converge::core::ids::ResourceKey>> {
    names
        .iter()
        .map(|text| {
            let bad = || {
                anyhow!("--target {text:?}: expected Kind/NAME, like Fleet/app or Volume/pgdata")
            };
            let (kind, name) = text.split_once('/').ok_or_else(bad)?;
            let kind = converge::core::ids::Kind::ALL
                .into_iter()
                .find(|k| k.as_str() == kind)
                .ok_or_else(bad)?;
            let name = ResourceName::new(name).map_err(|_| bad())?;
            Ok(converge::core::ids::ResourceKey::new(kind, name))
        })
        .collect()
}

/// The fleets `--replace` names, each `Fleet/NAME` of the manifests.
fn replace_fleets(desired: &Desired, names: &[String]) -> Result<BTreeSet<ResourceName>> {
    let mut fleets = BTreeSet::new();
    for text in names {
        let Some((kind, name)) = text.split_once('/') else {
            bail!("--replace {text:?}: expected Fleet/NAME, like Fleet/app");
        };
        if kind != "Fleet" {
            let why = match kind {
                "Volume" | "Bucket" => "it holds data a new one would not have",
                "SecurityGroup" => {
                    "its cloud name comes from the manifests, so without a state file a new group could not stay the stack's"
                }
                "KeyPair" => "it would be imported again, the same key under the same name",
                "Balancer" | "Cdn" => {
                    "a new one has another DNS name, and traffic would stop while it is made"
                }
                _ => "it has no replacement converge makes without a change",
            };
            bail!(
                "--replace {text}: only fleets are replaced on request (their instances roll within the fleet's update budget); not a {kind}: {why}"
            );
        }
        let Some(fleet) = desired.fleets.keys().find(|f| f.as_str() == name) else {
            let known: Vec<&str> = desired.fleets.keys().map(ResourceName::as_str).collect();
            bail!(
                "--replace {text}: the manifests declare no Fleet/{name} (fleets: {})",
                known.join(", ")
            );
        };
        fleets.insert(fleet.clone());
    }
    Ok(fleets)
}

fn parse_at(at: Option<&str>) -> Result<Option<Timestamp>> {
    match at {
        None => Ok(None),
        Some(s) => s.parse::<Timestamp>().map(Some).with_context(|| {
            format!("--at: expected RFC 3339 with an offset, like 2026-03-09T08:30:00-04:00, found {s:?}")
        }),
    }
}

/// The moment to plan for: `--at`, or now by the cloud's clock (the
/// host's, plus the local cloud's `converge local advance` offset).
async fn moment(cloud: &dyn Cloud, at: Option<Timestamp>) -> Result<Timestamp> {
    match at {
        Some(t) => Ok(t),
        None => converge::cloud::cloud_now(cloud, &SystemClock)
            .await
            .context("reading the cloud's clock"),
    }
}

/// The cutover steps a plan leaves for later, as `apply` reports them:
/// `DnsRecord/www: switch at 2026-12-02T16:00:00Z (old TTL 86400 s)`.
fn cutover_waits(plan: &converge::core::Plan) -> Vec<(String, Timestamp)> {
    let mut out = Vec::new();
    for c in &plan.changes {
        for n in &c.notes {
            if let converge::core::plan::Note::CutoverWaits { at, .. } = n {
                out.push((format!("{}: {n}", c.key), *at));
            }
        }
    }
    out
}

/// An opened cloud, and how its stacks are leased.
struct Opened {
    cloud: Arc<dyn Cloud>,
    aws: Option<Arc<AwsCloud>>,
    /// The local cloud, whose clock `apply --wait` moves forward instead
    /// of sleeping.
    local: Option<Arc<LocalCloud>>,
}

impl Opened {
    /// The stack's lease: a file in the state directory on the local
    /// cloud; an S3 object with `--lease-bucket` on AWS (none without).
    async fn lease(&self, g: &Global, stack: &ResourceName) -> Result<Option<Arc<dyn Lease>>> {
        let clock = Arc::new(SystemClock);
        match (&self.aws, &g.lease_bucket) {
            (None, _) => {
                let lease = LocalLease::new(&g.state_dir, stack, clock)?;
                Ok(Some(Arc::new(lease)))
            }
            (Some(aws), Some(bucket)) => {
                let lease = S3Lease::new(aws, bucket.clone(), stack, clock)?;
                lease.ensure_bucket().await?;
                Ok(Some(Arc::new(lease)))
            }
            (Some(_), None) => Ok(None),
        }
    }

    /// Takes the stack's lease for one command, or explains who holds it.
    async fn hold(&self, g: &Global, stack: &ResourceName) -> Result<Option<Holding>> {
        let Some(lease) = self.lease(g, stack).await? else {
            tracing::warn!(%stack, "no --lease-bucket: acting without a lease; run only one writer per stack");
            return Ok(None);
        };
        Ok(Some(Holding::take(lease, g.lease_wait).await?))
    }
}

/// Gives a held lease back, warning (not failing) when that goes wrong.
async fn release(holding: Option<Holding>) {
    if let Some(h) = holding
        && let Err(e) = h.release().await
    {
        tracing::warn!(error = %e, "releasing the stack's lease failed; it expires on its own");
    }
}

/// The local cloud's delays from `--local-delays`.
fn local_delays(g: &Global) -> Result<Delays> {
    match &g.local_delays {
        Some(s) => Delays::parse(s).map_err(|e| anyhow!("--local-delays: {e}")),
        None => Ok(Delays::default()),
    }
}

/// Opens the local cloud in `--state-dir`.
fn open_local(g: &Global, config: LocalConfig) -> Result<LocalCloud> {
    LocalCloud::open(&g.state_dir, config, Arc::new(SystemClock))
        .with_context(|| format!("opening the local cloud in {}", g.state_dir.display()))
}

async fn open_cloud(g: &Global, region: &str) -> Result<Opened> {
    let region = g.region.as_deref().unwrap_or(region);
    match g.cloud {
        CloudKind::Local => {
            let faults = match &g.local_faults {
                Some(s) => Faults::parse(s).map_err(|e| anyhow!("--local-faults: {e}"))?,
                None => Faults::default(),
            };
            let config = LocalConfig {
                region: region.to_owned(),
                delays: local_delays(g)?,
                faults,
            };
            let cloud = Arc::new(open_local(g, config)?);
            Ok(Opened {
                cloud: cloud.clone(),
                aws: None,
                local: Some(cloud),
            })
        }
        CloudKind::Aws => {
            let options = AwsOptions {
                region: g.region.clone(),
                profile: g.profile.clone(),
                endpoint_url: g.endpoint_url.clone(),
                ..AwsOptions::default()
            };
            let cloud = Arc::new(
                AwsCloud::connect(options, region)
                    .await
                    .context("connecting to AWS")?,
            );
            Ok(Opened {
                cloud: cloud.clone(),
                aws: Some(cloud),
                local: None,
            })
        }
    }
}

/// With `--stats`, prints the API calls the cloud was sent, by service and
/// operation, and their total, on stderr.
fn print_stats(g: &Global, cloud: &dyn Cloud) {
    if !g.stats {
        return;
    }
    let calls = cloud.api_calls();
    if calls.is_empty() {
        eprintln!("\nAPI calls: not counted by the {} cloud", cloud.name());
        return;
    }
    let total: u64 = calls.iter().map(|c| c.calls).sum();
    eprintln!("\nAPI calls ({total} in all):");
    for c in &calls {
        eprintln!("  {:<12} {:<40} {}", c.service, c.operation, c.calls);
    }
}

fn color_stdout() -> bool {
    meta::stdout_colored()
}

/// Renders a plan; `at` (the user gave `--at`) puts the moment it is for
/// on the first line of text and Markdown, which otherwise leave it out
/// so that plans of an unchanged stack are byte-identical. JSON always
/// carries it.
fn render(plan: &converge::core::Plan, format: Format, at: bool) -> String {
    match format {
        Format::Text => render::text(
            plan,
            &render::TextOptions {
                color: color_stdout(),
                at,
            },
        ),
        Format::Markdown => render::markdown_with(plan, &render::MarkdownOptions { at }),
        Format::Json => render::json(plan),
        Format::Dot => render::dot(plan),
    }
}

async fn plan(g: &Global, args: PlanArgs) -> Result<ExitCode> {
    let desired = load(&args.dir)?;
    let at = parse_at(args.at.as_deref())?;
    let request = PlanRequest {
        replace_fleets: replace_fleets(&desired, &args.replace)?,
        targets: targets(&args.target)?,
    };
    let cloud = open_cloud(g, &desired.region).await?;
    let at = moment(cloud.cloud.as_ref(), at).await?;
    let (_, plan) = observe_and_plan_requested(
        cloud.cloud.as_ref(),
        &desired,
        at,
        &BTreeMap::new(),
        &request,
    )
    .await?;
    print!("{}", render(&plan, args.format, args.at.is_some()));
    if let Some(out) = &args.out {
        let mut file = PlanFile::new(&desired, &plan);
        file.replace = request.replace_fleets.iter().cloned().collect();
        let text = serde_json::to_string_pretty(&file)?;
        converge::sys::write_atomic(out, text.as_bytes())
            .with_context(|| format!("saving the plan to {}", out.display()))?;
        eprintln!(
            "Saved the plan to {}; apply it with: converge apply --plan {}",
            out.display(),
            out.display()
        );
    }
    print_stats(g, cloud.cloud.as_ref());
    // A change converge does not make (a volume that would shrink or be
    // re-encrypted, a modification held back by AWS's six-hour rule) is
    // still a difference from the manifests: it is not "no changes".
    if args.detailed_exitcode && (plan.has_changes() || plan.has_blocked_changes()) {
        return Ok(ExitCode::from(EXIT_CHANGES));
    }
    Ok(ExitCode::SUCCESS)
}

async fn apply_cmd(g: &Global, args: ApplyArgs) -> Result<ExitCode> {
    let (desired, at, saved, request) = match &args.plan {
        Some(path) => {
            let file = PlanFile::load(path, &env_var)?;
            let at = Some(file.plan.at);
            let request = file.request();
            (
                file.desired.clone(),
                at,
                Some((path.clone(), file)),
                request,
            )
        }
        None => {
            let desired = load(&args.dir)?;
            let request = PlanRequest {
                replace_fleets: replace_fleets(&desired, &args.replace)?,
                targets: targets(&args.target)?,
            };
            (desired, parse_at(args.at.as_deref())?, None, request)
        }
    };
    let cloud = open_cloud(g, &desired.region).await?;
    let at = moment(cloud.cloud.as_ref(), at).await?;
    // The lease is taken before observing, so that the plan shown is the
    // one carried out: no other writer acts on the stack in between.
    let holding = cloud.hold(g, &desired.stack).await?;
    let lost = holding.as_ref().map(Holding::lost_signal);
    let result = async {
        let (observed, plan) = observe_and_plan_requested(
            cloud.cloud.as_ref(),
            &desired,
            at,
            &BTreeMap::new(),
            &request,
        )
        .await?;
        if let Some((path, file)) = &saved
            && !file.matches(&plan)
        {
            bail!(
                "the world changed since {} was made: its steps no longer match a fresh plan; run plan again",
                path.display()
            );
        }
        print!("{}", render(&plan, Format::Text, args.at.is_some()));
        let waiting = args.wait && !cutover_waits(&plan).is_empty();
        if !plan.has_changes() && !waiting {
            // Nothing changed since the observation the plan was made of.
            for (line, _) in cutover_waits(&plan) {
                println!("{line}");
            }
            print_outputs(&desired, &observed);
            print_stats(g, cloud.cloud.as_ref());
            return Ok(ExitCode::SUCCESS);
        }
        if plan.has_changes() && saved.is_none() && !confirm(args.yes, "Apply these changes?")? {
            println!("Apply cancelled.");
            return Ok(ExitCode::from(1));
        }
        let mut ok = execute(cloud.cloud.clone(), &plan, args.parallelism, lost.clone()).await;
        let (mut after, mut waits) = waits_now(&cloud, &desired, &request, &plan).await?;
        for (line, _) in &waits {
            println!("{line}");
        }
        while ok && args.wait && !waits.is_empty() {
            let plan;
            (ok, plan) = wait_and_apply(&cloud, &desired, &request, &args, &lost, &waits).await?;
            (after, waits) = waits_now(&cloud, &desired, &request, &plan).await?;
            for (line, _) in &waits {
                println!("{line}");
            }
        }
        print_outputs(&desired, &after);
        print_stats(g, cloud.cloud.as_ref());
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
    .await;
    release(holding).await;
    result
}

/// The stack as it is after `applied` was carried out (for its outputs),
/// and the cutover steps left for later. When `applied` leaves some, they
/// come from a plan made now: a cutover's wait counts from when its change
/// was in sync, which the executor noted after `applied` was made. Should
/// that plan fail, the waits `applied` noted are shown instead.
async fn waits_now(
    cloud: &Opened,
    desired: &Desired,
    request: &PlanRequest,
    applied: &converge::core::Plan,
) -> Result<(Observed, Vec<(String, Timestamp)>)> {
    let noted = cutover_waits(applied);
    if !noted.is_empty() {
        let at = moment(cloud.cloud.as_ref(), None).await?;
        match observe_and_plan_requested(
            cloud.cloud.as_ref(),
            desired,
            at,
            &BTreeMap::new(),
            request,
        )
        .await
        {
            Ok((observed, plan)) => return Ok((observed, cutover_waits(&plan))),
            Err(e) => eprintln!("warning: planning after the apply failed: {e}"),
        }
    }
    let observed = converge::commands::observe(cloud.cloud.as_ref(), desired)
        .await
        .with_context(|| format!("observing stack {} for its outputs", desired.stack))?;
    Ok((observed, noted))
}

/// One round of `apply --wait`: sleeps until the first cutover step in
/// `waits` is due (by the cloud's clock), then plans and applies again.
/// On the local cloud it moves the cloud's clock forward instead of
/// sleeping (as `converge local advance` does), so a day of cutover runs
/// through at once.
async fn wait_and_apply(
    cloud: &Opened,
    desired: &Desired,
    request: &PlanRequest,
    args: &ApplyArgs,
    lost: &Option<tokio::sync::watch::Receiver<bool>>,
    waits: &[(String, Timestamp)],
) -> Result<(bool, converge::core::Plan)> {
    let now = moment(cloud.cloud.as_ref(), None).await?;
    let due = waits.iter().map(|(_, t)| *t).min().unwrap_or(now);
    if due > now {
        let secs = due.duration_since(now).as_secs().max(0).unsigned_abs();
        match &cloud.local {
            Some(local) => {
                println!(
                    "Advancing the local cloud's clock {secs}s, to {due}, for the next cutover step."
                );
                local
                    .advance(Duration::from_secs(secs))
                    .context("advancing the local cloud's clock")?;
            }
            None => {
                println!("Waiting {secs}s, until {due}, for the next cutover step.");
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
        }
    }
    let at = moment(cloud.cloud.as_ref(), None).await?;
    let (_, plan) =
        observe_and_plan_requested(cloud.cloud.as_ref(), desired, at, &BTreeMap::new(), request)
            .await?;
    if plan.has_changes() {
        print!("{}", render(&plan, Format::Text, false));
    }
    let ok = execute(cloud.cloud.clone(), &plan, args.parallelism, lost.clone()).await;
    Ok((ok, plan))
}

async fn destroy(g: &Global, args: DestroyArgs) -> Result<ExitCode> {
    let declared = load(&args.dir)?;
    let empty = Desired::empty(declared.stack.clone(), declared.region.clone());
    let cloud = open_cloud(g, &declared.region).await?;
    let holding = cloud.hold(g, &declared.stack).await?;
    let lost = holding.as_ref().map(Holding::lost_signal);
    let result = async {
        let at = moment(cloud.cloud.as_ref(), None).await?;
        let (_, plan) =
            observe_and_plan(cloud.cloud.as_ref(), &empty, at, &BTreeMap::new()).await?;
        print!("{}", render(&plan, Format::Text, false));
        if !plan.has_changes() {
            print_stats(g, cloud.cloud.as_ref());
            return Ok(ExitCode::SUCCESS);
        }
        if !confirm(args.yes, &format!("Destroy stack {}?", declared.stack))? {
            println!("Destroy cancelled.");
            return Ok(ExitCode::from(1));
        }
        let ok = execute(cloud.cloud.clone(), &plan, args.parallelism, lost).await;
        print_stats(g, cloud.cloud.as_ref());
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
    .await;
    release(holding).await;
    result
}

async fn reconcile(g: &Global, args: ReconcileArgs) -> Result<ExitCode> {
    // Invalid manifests are an error before anything runs; later edits
    // are read every pass (an invalid one keeps the last good version).
    let desired = load(&args.dir)?;
    let cloud = open_cloud(g, &desired.region).await?;
    let Some(lease) = cloud.lease(g, &desired.stack).await? else {
        bail!(
            "reconcile on AWS needs --lease-bucket (or CONVERGE_LEASE_BUCKET): the S3 bucket holding the stack's lease, so that two reconcilers never act at once"
        );
    };
    let holding = Holding::take(lease, g.lease_wait).await?;
    let lost = holding.lost_signal();
    let opts = ReconcileOptions {
        interval: args.interval,
        parallelism: args.parallelism.max(1),
        ..ReconcileOptions::default()
    };
    let metrics = Arc::new(Metrics::new());
    let http = HttpClient::new(&HttpConfig::from_env())
        .map_err(|e| anyhow!("the client for metrics and health probes: {e}"))?;
    let mut reconciler = Reconciler::new(
        cloud.cloud.clone(),
        Manifests::Directory(args.dir.clone()),
        Arc::new(SystemClock),
        opts,
    )
    .with_http(Arc::new(http))
    .with_metrics(metrics.clone());
    let stop = reconciler.stop_handle();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = match &args.listen {
        Some(addr) => {
            let listener = metrics::bind(addr).await?;
            eprintln!("Serving /healthz and /metrics on http://{addr}");
            let lost = lost.clone();
            let healthy = move || !*lost.borrow();
            Some(tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                healthy,
                stop_rx,
            )))
        }
        None => None,
    };

    // SIGTERM and SIGINT stop the loop within seconds: no new step
    // starts, waits are abandoned (the next run re-plans), calls in flight
    // finish, and the lease is released; a second signal quits at once.
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!(
                "Stopping: abandoning waits, letting calls in flight finish (signal again to quit at once)."
            );
            stop.stop();
            wait_for_signal().await;
            std::process::exit(130);
        });
    }
    // Losing the lease (another writer took it over after this process
    // stalled past its TTL) stops the loop too.
    {
        let stop = stop.clone();
        let mut lost = lost.clone();
        tokio::spawn(async move {
            if lost.wait_for(|lost| *lost).await.is_ok() {
                stop.stop();
            }
        });
    }

    let code = if args.once {
        let report = reconciler.run_once().await;
        println!(
            "Pass at {}: {} step(s) planned, {} done, {} failed, {} held back; {}",
            report.at,
            report.planned,
            report.done(),
            report.failed(),
            report.held,
            if report.ok { "ok" } else { "failed" }
        );
        for event in &report.events {
            println!("  {event}");
        }
        if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    } else {
        let summary = reconciler.run().await;
        eprintln!(
            "Stopped after {} pass(es), {} failed.",
            summary.passes, summary.failed_passes
        );
        if *lost.borrow() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    };
    let _ = stop_tx.send(true);
    if let Some(server) = server {
        let _ = server.await;
    }
    print_stats(g, cloud.cloud.as_ref());
    release(Some(holding)).await;
    Ok(code)
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Asks on a terminal; elsewhere `--yes` is required.
fn confirm(yes: bool, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to change the cloud without confirmation: stdin is not a terminal; pass --yes"
        );
    }
    print!("\n{question} Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Carries out `plan`, stopping (no new steps) on Ctrl-C or when the
/// stack's lease is `lost`.
async fn execute(
    cloud: Arc<dyn Cloud>,
    plan: &converge::core::Plan,
    parallelism: usize,
    lost: Option<tokio::sync::watch::Receiver<bool>>,
) -> bool {
    let opts = ApplyOptions {
        parallelism,
        ..ApplyOptions::default()
    };
    if let Some(mut lost) = lost {
        let stop = opts.stop.clone();
        tokio::spawn(async move {
            if lost.wait_for(|lost| *lost).await.is_ok() {
                eprintln!("\nThe stack's lease was lost: starting no new steps.");
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let stop = opts.stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\nInterrupted: finishing the steps in flight, starting no new ones (Ctrl-C again to quit at once)."
            );
            stop.store(true, Ordering::SeqCst);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let progress = Arc::new(output::Progress::new());
    let report = apply::execute(cloud, plan, opts, progress).await;
    output::print_report(&report);
    report.is_success()
}

/// `converge output`: the outputs of the stack as the cloud holds it now.
async fn output_cmd(g: &Global, args: OutputArgs) -> Result<ExitCode> {
    let desired = load(&args.dir)?;
    let cloud = open_cloud(g, &desired.region).await?;
    let observed = converge::commands::observe(cloud.cloud.as_ref(), &desired)
        .await
        .with_context(|| format!("observing stack {}", desired.stack))?;
    let outs: BTreeMap<String, String> = outputs(&desired, &observed).into_iter().collect();
    match (&args.name, args.json) {
        (Some(name), json) => {
            let Some(value) = outs.get(name) else {
                let known: Vec<&str> = outs.keys().map(String::as_str).collect();
                bail!(
                    "no output {name:?} in stack {}; it has: {}",
                    desired.stack,
                    if known.is_empty() {
                        "none (apply it first)".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            };
            if json {
                println!("{}", serde_json::to_string(value)?);
            } else {
                println!("{value}");
            }
        }
        (None, true) => println!("{}", serde_json::to_string_pretty(&outs)?),
        (None, false) => {
            let width = outs.keys().map(String::len).max().unwrap_or(0);
            for (k, v) in &outs {
                println!("{k:width$} = {v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the stack's outputs as `observed` shows them.
fn print_outputs(desired: &Desired, observed: &Observed) {
    let outs = outputs(desired, observed);
    if !outs.is_empty() {
        println!("\nOutputs:");
        let width = outs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in outs {
            println!("  {k:width$} = {v}");
        }
    }
}

fn schema(out: Option<&Path>) -> Result<ExitCode> {
    let schemas = manifest::schemas();
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, schema) in schemas {
                let path = dir.join(&file);
                let text = serde_json::to_string_pretty(&schema)? + "\n";
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        None => {
            let all: serde_json::Map<String, serde_json::Value> = schemas.into_iter().collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn local(g: &Global, command: LocalCommand) -> Result<ExitCode> {
    if g.cloud != CloudKind::Local {
        bail!("`converge local` works on the local cloud only (--cloud local)");
    }
    let config = LocalConfig {
        region: "us-east-1".into(),
        delays: local_delays(g)?,
        faults: Faults::default(),
    };
    let cloud = open_local(g, config)?;
    match command {
        LocalCommand::Ls => {
            let offset = cloud.offset()?;
            if !offset.is_zero() {
                println!(
                    "clock: {} ahead of the host ({} now)",
                    converge_core::duration::show(offset.unsigned_abs()),
                    Timestamp::now()
                        .checked_add(offset)
                        .unwrap_or(Timestamp::MAX)
                );
            }
            let rows = cloud.list()?;
            print!("{}", converge::cloud::local::format_table(&rows));
        }
        LocalCommand::Advance { duration } => {
            let by = converge_core::duration::parse(&duration)
                .map_err(|e| anyhow!("local advance: {e}"))?;
            let offset = cloud.advance(by)?;
            println!(
                "the local cloud's clock is {} ahead of the host: now {}",
                converge_core::duration::show(offset.unsigned_abs()),
                Timestamp::now()
                    .checked_add(offset)
                    .unwrap_or(Timestamp::MAX)
            );
        }
        LocalCommand::Terminate { id } => {
            // A malformed ID names no instance the local cloud holds.
            let instance = id
                .parse()
                .map_err(|_| LocalError::NoSuchInstance(id.clone()))?;
            cloud.lose_instance(&instance)?;
            println!("{id} lost (terminated as a crash would)");
        }
        LocalCommand::Add { what } => match what {
            LocalAdd::Zone { domain } => println!("{}", cloud.add_zone(&domain)?),
            LocalAdd::Record {
                zone,
                name,
                rtype,
                values,
                ttl,
            } => {
                let t = converge_core::route53::RecordType::parse(&rtype);
                if !converge_core::route53::RecordType::DECLARABLE.contains(&t) {
                    bail!("record type {rtype:?}: expected one of A, AAAA, CNAME, TXT, MX");
                }
                if u64::from(ttl) > converge_core::route53::MAX_TTL {
                    bail!("--ttl {ttl}: at most {}", converge_core::route53::MAX_TTL);
                }
                cloud.add_record(&zone, &name, t, &values, ttl)?;
                println!("{name} {rtype} {ttl} {}", values.join(" "));
            }
            LocalAdd::InstanceProfile { name } => {
                println!("{}", cloud.add_instance_profile(&name)?)
            }
            LocalAdd::Certificate { domains } => {
                println!("{}", cloud.add_certificate(&domains)?)
            }
            LocalAdd::Parameter { name, value } => {
                println!("{}", cloud.put_parameter(&name, &value)?)
            }
            LocalAdd::Vpc { cidr, subnets } => {
                let block: Ipv4Cidr = cidr.parse().map_err(|e| anyhow!("VPC block: {e}"))?;
                let mut parsed = Vec::new();
                for s in &subnets {
                    let (zone, block) = s.split_once('=').ok_or_else(|| {
                        anyhow!("--subnet {s:?}: expected ZONE=CIDR, like us-east-1a=10.1.1.0/24")
                    })?;
                    let zone: Zone = zone.parse().map_err(|e| anyhow!("--subnet {s:?}: {e}"))?;
                    let block: Ipv4Cidr =
                        block.parse().map_err(|e| anyhow!("--subnet {s:?}: {e}"))?;
                    parsed.push((zone, block));
                }
                let (vpc, ids) = cloud.add_vpc(block, &parsed)?;
                println!("{vpc}");
                for id in ids {
                    println!("{id}");
                }
            }
        },
        LocalCommand::Remove { what } => match what {
            LocalRemove::InstanceProfile { name } => {
                println!("{}", cloud.remove_instance_profile(&name)?)
            }
            LocalRemove::Parameter { name } => {
                cloud.delete_parameter(&name)?;
                println!("{name}");
            }
            LocalRemove::DefaultVpc => {
                let vpc = cloud.remove_default_vpc()?;
                println!("{vpc}");
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
