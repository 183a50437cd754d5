//! `meshwhy enable` / `meshwhy disable`: print the namespace's WasmPlugin (or what to delete)
//! for `kubectl apply -f -` / `kubectl delete -f -`. Printing is all they do: nothing touches a
//! cluster. The YAML is the one deploy/istio renders (tests/tests/manifests.rs compares them).

use std::io::Write;
use std::time::Duration;

use clap::{ArgGroup, Args};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CliError;

/// Where istio-agent downloads the module: the collector's own HTTP port.
pub const MODULE_URL: &str = "http://meshwhy-collector.meshwhy.svc.cluster.local:9901/filter.wasm";
/// istiod's cluster name for the collector Service's gRPC port.
pub const COLLECTOR_CLUSTER: &str = "outbound|9900||meshwhy-collector.meshwhy.svc.cluster.local";
/// The sample rate deploy/istio ships with.
pub const DEFAULT_SAMPLE: f64 = 0.01;
/// How the operator can read the pinned digest with kubectl only (API server service proxy).
const SHA256_WITH_KUBECTL: &str = "kubectl get --raw /api/v1/namespaces/meshwhy/services/meshwhy-collector:http/proxy/filter.wasm.sha256";
/// How long `--collector-http` may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `meshwhy enable`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("pin").required(true).args(["sha256", "collector_http"])),
    after_long_help = "Examples:\n  \
        meshwhy enable -n shop --collector-http http://127.0.0.1:9901 | kubectl apply -f -\n  \
        meshwhy enable -n shop --sha256 \"$(kubectl get --raw /api/v1/namespaces/meshwhy/services/meshwhy-collector:http/proxy/filter.wasm.sha256)\" | kubectl apply -f -\n  \
        meshwhy enable -n shop --waypoint waypoint --sample 0.1 --capture 4xx,5xx --sha256 HEX\n\n\
        Also add the namespace to the push list (rule 0) of deploy/collector/authorizationpolicy.yaml."
)]
pub struct EnableArgs {
    /// The namespace whose proxies get the filter.
    #[arg(short = 'n', long, value_name = "NS", value_parser = parse_namespace)]
    pub namespace: String,

    /// Fraction of successful requests recorded in full, 0 to 1 (failures are always recorded;
    /// the other successes are counted).
    #[arg(long, value_name = "R", default_value_t = DEFAULT_SAMPLE, value_parser = parse_sample)]
    pub sample: f64,

    /// Which responses are failures recorded in full: classes (`5xx`; `4xx` needs `5xx` too,
    /// since every code from the lowest class up is captured) and single codes below them
    /// (`5xx,403,429`). Default: the filter's, 5xx plus 403 and 429.
    #[arg(long, value_name = "LIST", value_parser = parse_capture)]
    pub capture: Option<Capture>,

    /// The module's sha256, as the collector publishes it at /filter.wasm.sha256.
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
    pub sha256: Option<String>,

    /// Read the sha256 from this collector HTTP address (`kubectl -n meshwhy port-forward
    /// svc/meshwhy-collector 9901` then http://127.0.0.1:9901).
    #[arg(long, value_name = "URL")]
    pub collector_http: Option<String>,

    /// Ambient mode: attach to this waypoint Gateway of the namespace instead of its sidecars.
    #[arg(long, value_name = "GATEWAY", value_parser = parse_namespace)]
    pub waypoint: Option<String>,
}

/// `meshwhy disable`.
#[derive(Debug, Args)]
#[command(
    after_long_help = "Example:\n  meshwhy disable -n shop | kubectl delete -f -\n\n\
        The proxies drop the filter at their next xDS update; records already sent stay in the collector."
)]
pub struct DisableArgs {
    /// The namespace to stop recording in.
    #[arg(short = 'n', long, value_name = "NS", value_parser = parse_namespace)]
    pub namespace: String,
}

/// What `--capture` asks for, as the filter's `capture_min_code` and `capture_codes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Every status at or above it.
    pub min_code: u32,
    /// Single codes below `min_code`, sorted.
    pub codes: Vec<u32>,
}

/// A Kubernetes name (RFC 1123 label).
pub fn parse_namespace(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a Kubernetes name (lowercase letters, digits and '-', at most 63)"
        ))
    }
}

fn parse_sample(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{value:?}: expected a fraction from 0 to 1, e.g. 0.01"
        )),
    }
}

/// `5xx`, `4xx,5xx`, `5xx,403,429`.
pub fn parse_capture(value: &str) -> Result<Capture, String> {
    let mut classes = Vec::new();
    let mut codes = Vec::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let lower = item.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            match class.parse::<u32>() {
                Ok(class @ 1..=5) => classes.push(class),
                _ => return Err(format!("{item:?}: a class is 1xx to 5xx")),
            }
        } else {
            match item.parse::<u32>() {
                Ok(code @ 100..=599) => codes.push(code),
                _ => {
                    return Err(format!(
                        "{item:?}: expected a class such as 5xx or a status code such as 429"
                    ));
                }
            }
        }
    }
    classes.sort_unstable();
    classes.dedup();
    let Some(&lowest) = classes.first() else {
        return Err(format!(
            "{value:?} names no class: add 5xx (e.g. 5xx,{})",
            codes.first().copied().unwrap_or(429)
        ));
    };
    // capture_min_code captures every code from it upwards: the classes must be contiguous to 5xx.
    let missing: Vec<String> = (lowest..=5)
        .filter(|class| !classes.contains(class))
        .map(|class| format!("{class}xx"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{value:?}: {lowest}xx captures every code from {lowest}00 up, so {} must be listed too",
            missing.join(", ")
        ));
    }
    let min_code = lowest * 100;
    codes.retain(|code| *code < min_code);
    codes.sort_unstable();
    codes.dedup();
    Ok(Capture { min_code, codes })
}

fn parse_sha256(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a sha256 (64 lowercase hex digits); read it with `{SHA256_WITH_KUBECTL}`"
        ))
    }
}

/// A number the filter reads as a fraction, always with a decimal point (YAML float).
fn fraction(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate}")
    }
}

/// The WasmPlugin YAML for `namespace`.
pub fn wasm_plugin_yaml(args: &EnableArgs, sha256: &str) -> String {
    let namespace = &args.namespace;
    let mut yaml = format!(
        "# meshwhy for namespace {namespace}: `kubectl apply -f -`. Also add {namespace} to the push list\n\
         # (rule 0) of deploy/collector/authorizationpolicy.yaml. Why each field: deploy/istio/wasmplugin.yaml.\n\
         apiVersion: extensions.istio.io/v1alpha1\n\
         kind: WasmPlugin\n\
         metadata:\n  name: meshwhy\n  namespace: {namespace}\n\
         spec:\n  url: {MODULE_URL}\n  sha256: \"{sha256}\"\n  imagePullPolicy: IfNotPresent\n  type: HTTP\n\
         \x20 # After authn and authz (rbac, ext_authz, jwt_authn): what they deny is still recorded.\n\
         \x20 phase: STATS\n  priority: -1000\n\
         \x20 # An observer never takes traffic down: a module that fails to load is skipped.\n\
         \x20 failStrategy: FAIL_OPEN\n"
    );
    if let Some(waypoint) = &args.waypoint {
        yaml.push_str(&format!(
            "  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: {waypoint}\n"
        ));
    }
    yaml.push_str(&format!(
        "  pluginConfig:\n    collector_cluster: \"{COLLECTOR_CLUSTER}\"\n    flush_interval_ms: 1000\n    success_sample_rate: {}\n",
        fraction(args.sample)
    ));
    if let Some(capture) = &args.capture {
        let codes: Vec<String> = capture.codes.iter().map(u32::to_string).collect();
        yaml.push_str(&format!(
            "    capture_min_code: {}\n    capture_codes: [{}]\n",
            capture.min_code,
            codes.join(", ")
        ));
    }
    yaml
}

/// What `meshwhy disable` prints.
pub fn disable_yaml(namespace: &str) -> String {
    format!(
        "# Stop recording in namespace {namespace}: `kubectl delete -f -`, or\n\
         #   kubectl delete wasmplugin meshwhy -n {namespace}\n\
         apiVersion: extensions.istio.io/v1alpha1\n\
         kind: WasmPlugin\n\
         metadata:\n  name: meshwhy\n  namespace: {namespace}\n"
    )
}

/// GETs `<base>/filter.wasm.sha256` over plain HTTP/1.1 and checks what came back.
pub async fn fetch_sha256(base: &str) -> Result<String, CliError> {
    let usage = |why: String| CliError::Usage(format!("--collector-http {base:?}: {why}"));
    let rest = base.trim().strip_prefix("http://").ok_or_else(|| {
        usage("expected http://HOST:PORT (the collector's HTTP port, 9901)".into())
    })?;
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) if path.ends_with("filter.wasm.sha256") => {
            (authority, format!("/{path}"))
        }
        Some((authority, path)) => (
            authority,
            format!("/{}/filter.wasm.sha256", path.trim_end_matches('/')).replace("//", "/"),
        ),
        None => (rest, "/filter.wasm.sha256".to_owned()),
    };
    if authority.is_empty() {
        return Err(usage("no host".into()));
    }
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let unreachable = |reason: String| CliError::Unreachable {
        url: format!("http://{authority}{path}"),
        reason,
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        // The answer is 65 bytes; anything much bigger is not the collector.
        stream.take(64 * 1024).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(FETCH_TIMEOUT, exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(error)) => return Err(unreachable(error.to_string())),
        Err(_) => return Err(unreachable(format!("no answer within {FETCH_TIMEOUT:?}"))),
    };
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| unreachable("not an HTTP response".into()))?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        return Err(CliError::Data(format!(
            "http://{authority}{path} answered {status}: {}",
            body.trim()
        )));
    }
    parse_sha256(body).map_err(|_| {
        CliError::Data(format!(
            "http://{authority}{path} did not answer a sha256 (got {:?}); is this the collector's HTTP port?",
            body.chars().take(80).collect::<String>()
        ))
    })
}

pub(crate) async fn run_enable(args: EnableArgs) -> Result<(), CliError> {
    let sha256 = match (&args.sha256, &args.collector_http) {
        (Some(sha256), _) => sha256.clone(),
        (None, Some(url)) => fetch_sha256(url).await?,
        // clap's group makes one of them required.
        (None, None) => {
            return Err(CliError::Usage(format!(
                "give --sha256 HEX (read it with `{SHA256_WITH_KUBECTL}`) or --collector-http URL"
            )));
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(wasm_plugin_yaml(&args, &sha256).as_bytes())?;
    out.flush()?;
    Ok(())
}

pub(crate) fn run_disable(args: DisableArgs) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(disable_yaml(&args.namespace).as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {

    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::{Cli, Command};

    fn enable(args: &[&str]) -> Result<EnableArgs, clap::Error> {
        let mut argv = vec!["meshwhy", "enable"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Enable(args) => Ok(args),
            other => panic!("enable expected, got {other:?}"),
        }
    }

    #[test]
    fn capture_lists() {
        assert_eq!(
            parse_capture("5xx"),
            Ok(Capture {
                min_code: 500,
                codes: vec![]
            })
        );
        assert_eq!(
            parse_capture("4xx,5xx"),
            Ok(Capture {
                min_code: 400,
                codes: vec![]
            })
        );
        assert_eq!(
            parse_capture("5XX, 429,403,429,503"),
            Ok(Capture {
                min_code: 500,
                codes: vec![403, 429]
            })
        );
        let error = parse_capture("4xx").unwrap_err();
        assert!(error.contains("5xx must be listed too"), "{error}");
        assert!(parse_capture("429").unwrap_err().contains("add 5xx"));
        assert!(parse_capture("6xx").is_err());
        assert!(parse_capture("5xx,42").is_err());
    }

    #[test]
    fn enable_needs_a_pin_and_a_valid_namespace() {
        let sha = "a".repeat(64);
        assert!(enable(&["-n", "shop", "--sha256", &sha]).is_ok());
        let missing = enable(&["-n", "shop"]).unwrap_err().to_string();
        assert!(
            missing.contains("--sha256") && missing.contains("--collector-http"),
            "{missing}"
        );
        let both = enable(&[
            "-n",
            "shop",
            "--sha256",
            &sha,
            "--collector-http",
            "http://x:1",
        ]);
        assert!(both.is_err());
        assert!(enable(&["-n", "Shop", "--sha256", &sha]).is_err());
        let short = enable(&["-n", "shop", "--sha256", "abc"])
            .unwrap_err()
            .to_string();
        assert!(short.contains("kubectl get --raw"), "{short}");
        assert!(enable(&["-n", "shop", "--sha256", &sha, "--sample", "2"]).is_err());
    }

    #[test]
    fn yaml_carries_every_choice() {
        let sha = "0123456789abcdef".repeat(4);
        let args = enable(&[
            "-n",
            "shop",
            "--sha256",
            &sha,
            "--sample",
            "1",
            "--capture",
            "4xx,5xx",
            "--waypoint",
            "waypoint",
        ])
        .unwrap();
        let yaml = wasm_plugin_yaml(&args, &sha);
        for line in [
            "  namespace: shop\n",
            &format!("  sha256: \"{sha}\"\n"),
            "  failStrategy: FAIL_OPEN\n",
            "  phase: STATS\n",
            "    name: waypoint\n",
            "    success_sample_rate: 1.0\n",
            "    capture_min_code: 400\n",
            "    capture_codes: []\n",
        ] {
            assert!(yaml.contains(line), "{line:?} missing in\n{yaml}");
        }
        let disable = disable_yaml("shop");
        assert!(disable.contains("kubectl delete wasmplugin meshwhy -n shop"));
        assert!(disable.ends_with("  namespace: shop\n"));
    }

    use crate::cli::explain::tests::assert_snapshot;

    #[test]
    fn help_texts() {
        for name in ["enable", "disable"] {
            let mut command = Cli::command();
            let help = command
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string();
            assert_snapshot(&format!("{name}-help.txt"), &help);
        }
    }
}
