//! deploy/ renders (base, an opt-in namespace, the ambient overlay) with the in-repo kustomize
//! renderer, and every object validates against Istio's own CRD schemas and Kubernetes' core
//! schemas (vendored under tests/fixtures). On top of the schemas, the choices that keep an
//! observer from hurting the mesh are pinned: FAIL_OPEN, the hardened securityContext, the
//! module path shared with the Containerfile, one namespace list for both policies. Each check is
//! also shown to fail on a loosened copy, so none of them passes vacuously.

use anyhow::{Context, Result};
use meshwhy_e2e::{kustomize, paths, schema::Schemas};
use serde_json::{Value, json};

const MODULE_PATH: &str = "/usr/local/share/meshwhy/meshwhy_filter.wasm";
const MODULE_URL: &str = "http://meshwhy-collector.meshwhy.svc.cluster.local:9901/filter.wasm";
const COLLECTOR_CLUSTER: &str = "outbound|9900||meshwhy-collector.meshwhy.svc.cluster.local";

fn schemas() -> Result<Schemas> {
    Schemas::load(&paths::repo_root().join("tests/fixtures"))
}

fn render(dir: &str) -> Result<Vec<Value>> {
    kustomize::render(&paths::repo_root().join(dir)).with_context(|| format!("render {dir}"))
}

fn only<'a>(objects: &'a [Value], kind: &str) -> Result<&'a Value> {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|object| kustomize::kind(object) == kind)
        .collect();
    anyhow::ensure!(found.len() == 1, "{} objects of kind {kind}", found.len());
    Ok(found[0])
}

/// One way to loosen a container's settings, for the negative checks.
type Loosen = fn(&mut Value);

/// Every way a WasmPlugin departs from the safe, recorded-after-authz, collector-served shape.
fn wasm_plugin_problems(plugin: &Value) -> Vec<String> {
    let spec = &plugin["spec"];
    let mut problems = Vec::new();
    // Istio's default when the field is missing is FAIL_CLOSE: missing is as bad as FAIL_CLOSE.
    if spec["failStrategy"] != "FAIL_OPEN" {
        problems.push(format!(
            "failStrategy must be FAIL_OPEN, is {}",
            spec["failStrategy"]
        ));
    }
    if spec["phase"] != "STATS" {
        problems.push(format!("phase must be STATS, is {}", spec["phase"]));
    }
    if spec["url"] != MODULE_URL {
        problems.push(format!("url must be {MODULE_URL}, is {}", spec["url"]));
    }
    let sha = spec["sha256"].as_str().unwrap_or_default();
    if sha.len() != 64
        || !sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        problems.push(format!("sha256 must be pinned (64 hex), is {:?}", sha));
    }
    if spec["pluginConfig"]["collector_cluster"] != COLLECTOR_CLUSTER {
        problems.push(format!(
            "pluginConfig.collector_cluster must be {COLLECTOR_CLUSTER}, is {}",
            spec["pluginConfig"]["collector_cluster"]
        ));
    }
    problems
}

/// Every way the collector's pod loosens its securityContext.
fn security_problems(deployment: &Value) -> Vec<String> {
    let pod = &deployment["spec"]["template"]["spec"];
    let mut problems = Vec::new();
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[field] == true {
            problems.push(format!("pod {field} is on"));
        }
    }
    if pod["securityContext"]["runAsNonRoot"] != true {
        problems.push("pod runAsNonRoot must be true".to_owned());
    }
    if pod["securityContext"]["runAsUser"] == 0 {
        problems.push("pod runs as uid 0".to_owned());
    }
    if pod["securityContext"]["seccompProfile"]["type"] != "RuntimeDefault" {
        problems.push("pod seccompProfile must be RuntimeDefault".to_owned());
    }
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        problems.push("no containers".to_owned());
    }
    for container in containers {
        let name = container["name"].as_str().unwrap_or_default().to_owned();
        let context = &container["securityContext"];
        let mut need = |ok: bool, what: &str| {
            if !ok {
                problems.push(format!("container {name}: {what}"));
            }
        };
        need(context["runAsNonRoot"] == true, "runAsNonRoot must be true");
        need(context["runAsUser"] != 0, "must not run as uid 0");
        need(
            context["readOnlyRootFilesystem"] == true,
            "readOnlyRootFilesystem must be true",
        );
        need(
            context["allowPrivilegeEscalation"] == false,
            "allowPrivilegeEscalation must be false",
        );
        need(context["privileged"] != true, "must not be privileged");
        need(
            context["capabilities"]["drop"]
                .as_array()
                .is_some_and(|drop| drop.contains(&json!("ALL"))),
            "capabilities must drop ALL",
        );
        need(
            context["capabilities"]["add"].is_null(),
            "must add no capabilities",
        );
        need(
            context["seccompProfile"]["type"] == "RuntimeDefault"
                || context["seccompProfile"].is_null(),
            "seccompProfile must stay RuntimeDefault",
        );
        need(
            container["readinessProbe"].is_object() && container["livenessProbe"].is_object(),
            "needs readiness and liveness probes",
        );
        need(
            container["resources"]["requests"]["memory"].is_string()
                && container["resources"]["limits"]["memory"].is_string(),
            "needs memory requests and limits",
        );
    }
    problems
}

#[test]
fn every_rendered_object_validates_against_istio_and_kubernetes_schemas() -> Result<()> {
    let schemas = schemas()?;
    let mut seen = Vec::new();
    for dir in [
        "deploy/collector",
        "deploy/istio",
        "deploy/namespaces/example",
        "deploy/namespaces/example-ambient",
    ] {
        let objects = render(dir)?;
        anyhow::ensure!(!objects.is_empty(), "{dir} renders nothing");
        for object in &objects {
            let errors = schemas.validate(object);
            assert!(errors.is_empty(), "{dir}:\n{}", errors.join("\n"));
            seen.push(format!(
                "{}/{}",
                kustomize::kind(object),
                kustomize::name(object)
            ));
        }
    }
    for kind in [
        "Namespace/meshwhy",
        "Deployment/meshwhy-collector",
        "Service/meshwhy-collector",
        "PersistentVolumeClaim/meshwhy-data",
        "PodDisruptionBudget/meshwhy-collector",
        "AuthorizationPolicy/meshwhy-collector",
        "PeerAuthentication/meshwhy-collector",
        "NetworkPolicy/meshwhy-collector",
        "WasmPlugin/meshwhy",
    ] {
        assert!(
            seen.iter().any(|s| s == kind),
            "{kind} not rendered: {seen:?}"
        );
    }
    Ok(())
}

#[test]
fn the_validator_rejects_unknown_fields_wrong_types_enums_and_cel_rules() -> Result<()> {
    let schemas = schemas()?;
    let plugin = only(&render("deploy/namespaces/example")?, "WasmPlugin")?.clone();
    let deployment = only(&render("deploy/collector")?, "Deployment")?.clone();
    let broken: Vec<(Value, &str)> = vec![
        {
            let mut p = plugin.clone();
            p["spec"]["failStratgy"] = json!("FAIL_OPEN");
            (p, ".spec.failStratgy: unknown field")
        },
        {
            let mut p = plugin.clone();
            p["spec"]["failStrategy"] = json!("FAIL_SOMETIMES");
            (p, "is not one of")
        },
        {
            let mut p = plugin.clone();
            p["spec"]["sha256"] = json!("ABC");
            (p, "does not match")
        },
        {
            let mut p = plugin.clone();
            p["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
            p["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "waypoint"}]);
            (p, "only one of targetRefs or selector can be set")
        },
        {
            let mut p = plugin.clone();
            p["spec"]["url"] = json!("ftp://x/y.wasm");
            (p, "url must have schema one of")
        },
        {
            let mut d = deployment.clone();
            d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] =
                json!(true);
            (d, "readOnlyRootFs: unknown field")
        },
        {
            let mut d = deployment.clone();
            d["spec"]["replicas"] = json!("one");
            (d, "is not of type")
        },
        {
            let mut d = deployment.clone();
            d["spec"]["template"]["spec"]["containers"][0]
                .as_object_mut()
                .context("a container")?
                .remove("name");
            (d, "missing required field `name`")
        },
    ];
    for (object, expected) in broken {
        let errors = schemas.validate(&object).join("\n");
        assert!(
            errors.contains(expected),
            "want {expected:?}, got:\n{errors}"
        );
    }
    Ok(())
}

#[test]
fn every_wasm_plugin_fails_open_after_authz_from_the_collector() -> Result<()> {
    for dir in [
        "deploy/namespaces/example",
        "deploy/namespaces/example-ambient",
    ] {
        let objects = render(dir)?;
        let plugin = only(&objects, "WasmPlugin")?;
        assert_eq!(plugin["metadata"]["namespace"], "example", "{dir}");
        let problems = wasm_plugin_problems(plugin);
        assert!(problems.is_empty(), "{dir}: {problems:?}");
    }
    let ambient = render("deploy/namespaces/example-ambient")?;
    let spec = &only(&ambient, "WasmPlugin")?["spec"];
    assert_eq!(
        spec["targetRefs"],
        json!([{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}])
    );
    assert!(spec["selector"].is_null());
    let sidecar = render("deploy/namespaces/example")?;
    assert!(only(&sidecar, "WasmPlugin")?["spec"]["targetRefs"].is_null());

    // The check has teeth: FAIL_CLOSE, a missing failStrategy, an unpinned module.
    let plugin = only(&sidecar, "WasmPlugin")?;
    let mut closed = plugin.clone();
    closed["spec"]["failStrategy"] = json!("FAIL_CLOSE");
    assert!(wasm_plugin_problems(&closed)[0].contains("FAIL_OPEN"));
    let mut missing = plugin.clone();
    missing["spec"]
        .as_object_mut()
        .context("spec")?
        .remove("failStrategy");
    assert!(wasm_plugin_problems(&missing)[0].contains("FAIL_OPEN"));
    let mut unpinned = plugin.clone();
    unpinned["spec"]["sha256"] = json!("");
    assert!(wasm_plugin_problems(&unpinned)[0].contains("sha256"));
    Ok(())
}

#[test]
fn the_collector_pod_is_hardened_and_serves_the_baked_in_module() -> Result<()> {
    let objects = render("deploy/collector")?;
    let deployment = only(&objects, "Deployment")?;
    let problems = security_problems(deployment);
    assert!(problems.is_empty(), "{problems:?}");

    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // The image comes from kustomize `images:`.
    assert_eq!(container["image"], "meshwhy/collector:0.1.0");
    let args: Vec<&str> = container["args"]
        .as_array()
        .context("args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        [
            format!("--filter-wasm={MODULE_PATH}").as_str(),
            "--store=sqlite",
            "--data-dir=/var/lib/meshwhy",
            "--max-db-size=8GiB"
        ]
    );
    // The data directory is the PVC, mounted where --data-dir will point.
    assert_eq!(
        container["volumeMounts"][0],
        json!({"name": "data", "mountPath": "/var/lib/meshwhy"})
    );
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        only(&objects, "PersistentVolumeClaim")?["metadata"]["name"]
    );
    // The Containerfile bakes the module at that path and runs as a numeric non-root user.
    let containerfile = std::fs::read_to_string(paths::repo_root().join("Containerfile"))?;
    assert!(
        containerfile.contains(&format!("/meshwhy_filter.wasm {MODULE_PATH}")),
        "the Containerfile copies the module to {MODULE_PATH}"
    );
    assert!(containerfile.contains("\nUSER 65532:65532\n"));
    assert!(containerfile.contains("FROM gcr.io/distroless/static-debian12:nonroot"));

    // Service ports named for Istio's protocol selection.
    let service = only(&objects, "Service")?;
    let ports: Vec<(String, u64, String)> = service["spec"]["ports"]
        .as_array()
        .context("ports")?
        .iter()
        .map(|port| {
            (
                port["name"].as_str().unwrap_or_default().to_owned(),
                port["port"].as_u64().unwrap_or_default(),
                port["appProtocol"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("grpc".to_owned(), 9900, "grpc".to_owned()),
            ("http".to_owned(), 9901, "http".to_owned())
        ]
    );

    // The check has teeth: each loosening is caught.
    let loosen: [(&str, Loosen); 6] = [
        ("readOnlyRootFilesystem", |c| {
            c["securityContext"]["readOnlyRootFilesystem"] = json!(false)
        }),
        ("allowPrivilegeEscalation", |c| {
            c["securityContext"]
                .as_object_mut()
                .map(|s| s.remove("allowPrivilegeEscalation"));
        }),
        ("drop ALL", |c| {
            c["securityContext"]["capabilities"]["drop"] = json!(["NET_RAW"])
        }),
        ("add no capabilities", |c| {
            c["securityContext"]["capabilities"]["add"] = json!(["NET_ADMIN"])
        }),
        ("runAsNonRoot", |c| {
            c["securityContext"]["runAsNonRoot"] = json!(false)
        }),
        ("privileged", |c| {
            c["securityContext"]["privileged"] = json!(true)
        }),
    ];
    for (what, change) in loosen {
        let mut loosened = deployment.clone();
        change(&mut loosened["spec"]["template"]["spec"]["containers"][0]);
        let problems = security_problems(&loosened);
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "{what}: {problems:?}"
        );
    }
    let mut pod_seccomp = deployment.clone();
    pod_seccomp["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"] =
        json!("Unconfined");
    assert!(!security_problems(&pod_seccomp).is_empty());
    Ok(())
}

#[test]
fn one_namespace_list_feeds_both_policies() -> Result<()> {
    let objects = render("deploy/collector")?;
    let authz = only(&objects, "AuthorizationPolicy")?;
    let network = only(&objects, "NetworkPolicy")?;
    let pushers = &authz["spec"]["rules"][0]["from"][0]["source"]["namespaces"];
    assert_eq!(pushers, &json!(["example"]));
    assert_eq!(
        &network["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
        pushers
    );
    // Pushes and queries are told apart by gRPC path, queries only from the operator identity.
    assert_eq!(
        authz["spec"]["rules"][0]["to"][0]["operation"]["paths"],
        json!(["/meshwhy.v1.Ingest/*"])
    );
    assert_eq!(
        authz["spec"]["rules"][1],
        json!({
            "from": [{"source": {"principals": ["cluster.local/ns/meshwhy/sa/meshwhy-operator"]}}],
            "to": [{"operation": {"ports": ["9900"], "paths": ["/meshwhy.v1.Query/*"]}}]
        })
    );
    assert_eq!(authz["spec"]["action"], "ALLOW");
    Ok(())
}

#[test]
fn the_renderer_refuses_what_it_does_not_implement() -> Result<()> {
    let scratch = meshwhy_e2e::envoy::Scratch::new("kustomize")?;
    std::fs::write(
        scratch.path.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\ncommonLabels: {a: b}\n",
    )?;
    let error = format!("{:#}", kustomize::render(&scratch.path).unwrap_err());
    assert!(
        error.contains("`commonLabels` is a kustomize feature"),
        "{error}"
    );
    Ok(())
}

/// Runs the real `meshwhy` binary; stdout, or an error with stderr.
fn meshwhy(args: &[&str]) -> Result<String> {
    let output = std::process::Command::new(meshwhy_e2e::cli::meshwhy_binary()?)
        .args(args)
        .env_remove("MESHWHY_COLLECTOR")
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "meshwhy {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn meshwhy_enable_prints_the_overlay_s_wasm_plugin_and_it_validates() -> Result<()> {
    let schemas = schemas()?;
    let zeros = "0".repeat(64);
    let printed =
        kustomize::documents(&meshwhy(&["enable", "-n", "example", "--sha256", &zeros])?)?;
    assert_eq!(printed.len(), 1);
    let rendered = render("deploy/namespaces/example")?;
    assert_eq!(
        &printed[0],
        only(&rendered, "WasmPlugin")?,
        "enable = the overlay"
    );

    let ambient = kustomize::documents(&meshwhy(&[
        "enable",
        "-n",
        "example",
        "--sha256",
        &zeros,
        "--waypoint",
        "waypoint",
    ])?)?;
    let rendered = render("deploy/namespaces/example-ambient")?;
    assert_eq!(
        &ambient[0],
        only(&rendered, "WasmPlugin")?,
        "enable --waypoint = the ambient overlay"
    );

    let tuned = kustomize::documents(&meshwhy(&[
        "enable",
        "-n",
        "shop",
        "--sha256",
        &zeros,
        "--sample",
        "0.5",
        "--capture",
        "5xx,404",
    ])?)?;
    for plugin in printed.iter().chain(&ambient).chain(&tuned) {
        let errors = schemas.validate(plugin);
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        assert!(wasm_plugin_problems(plugin).is_empty(), "{plugin}");
    }
    let config = &tuned[0]["spec"]["pluginConfig"];
    assert_eq!(config["success_sample_rate"], 0.5);
    assert_eq!(config["capture_min_code"], 500);
    assert_eq!(config["capture_codes"], json!([404]));

    let disable = kustomize::documents(&meshwhy(&["disable", "-n", "shop"])?)?;
    assert_eq!(
        disable,
        [
            json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
                "metadata": {"name": "meshwhy", "namespace": "shop"}})
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshwhy_enable_pins_the_sha256_a_real_collector_publishes() -> Result<()> {
    let wasm = paths::filter_wasm()?;
    let collector = meshwhy_e2e::collector_process::CollectorProcess::start(Some(&wasm)).await?;
    let expected = meshwhy_collector::module::sha256_hex(&std::fs::read(&wasm)?);
    let url = format!("http://{}", collector.http);
    let printed = tokio::task::spawn_blocking(move || {
        meshwhy(&["enable", "-n", "shop", "--collector-http", &url])
    })
    .await??;
    let plugin = &kustomize::documents(&printed)?[0];
    assert_eq!(plugin["spec"]["sha256"], expected.as_str());
    assert!(schemas()?.validate(plugin).is_empty());

    // A collector without a module: the 404's reason reaches the user, exit 65.
    let bare = meshwhy_e2e::collector_process::CollectorProcess::start(None).await?;
    let url = format!("http://{}", bare.http);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(meshwhy_e2e::cli::meshwhy_binary()?)
            .args(["enable", "-n", "shop", "--collector-http", &url])
            .output()
            .map_err(anyhow::Error::from)
    })
    .await??;
    assert_eq!(output.status.code(), Some(65));
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("answered 404") && stderr.contains("no filter module is configured"),
        "{stderr}"
    );
    Ok(())
}
