//! The Kubernetes manifests against the schemas and against the binaries:
//! every manifest validates offline (`kubernetes-validate --strict`, from
//! the test virtualenv), and every container's arguments, environment
//! variables, ports and probe paths are ones the binary actually accepts
//! and serves.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sluice_e2e::control::{ControlPlane, Database};
use sluice_e2e::{Gateway, GatewayOptions, binary};

const K8S: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/k8s");

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().and_then(|e| e.to_str()) == Some("yaml") {
            out.push(p);
        }
    }
    out.sort();
}

/// Every document of every manifest, as JSON, with its file.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(Path::new(K8S), &mut files);
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in text.split("\n---\n") {
            let node = sluice_proto::pack::yaml::parse(doc)
                .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
            docs.push((f.clone(), node.to_json()));
        }
    }
    docs
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let python = std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| {
        panic!("SLUICE_PYTHON is not set: run the tests through ./scripts/test, which creates the virtualenv with kubernetes-validate")
    });
    let validate = Path::new(&python).with_file_name("kubernetes-validate");
    let mut files = Vec::new();
    yaml_files(Path::new(K8S), &mut files);
    let out = Command::new(&validate)
        .arg("--strict")
        .arg("--kubernetes-version")
        .arg("1.31.0")
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", validate.display()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !report.contains("ERROR"),
        "{report}"
    );
    // Only kustomizations and the CloudNativePG CRD have no bundled schema.
    for line in report
        .lines()
        .filter(|l| l.contains("Couldn't find schema"))
    {
        assert!(
            line.contains("kind Kustomization")
                || line.contains("kind Cluster with api version postgresql.cnpg.io"),
            "{line}"
        );
    }
    let passed = report
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert!(passed >= 12, "{report}");

    // Every kustomization lists files that exist.
    for (file, doc) in documents()
        .iter()
        .filter(|(_, d)| d["kind"] == "Kustomization")
    {
        for r in doc["resources"].as_array().unwrap() {
            let p = file.parent().unwrap().join(r.as_str().unwrap());
            assert!(
                p.exists(),
                "{}: resource {} does not exist",
                file.display(),
                p.display()
            );
        }
    }
}

/// (binary, container) for every workload container of ours.
fn containers() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (_, doc) in documents() {
        if !matches!(
            doc["kind"].as_str(),
            Some("Deployment" | "Job" | "StatefulSet")
        ) {
            continue;
        }
        for c in doc["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            // The CUDA image runs the same binary as the CPU one.
            let image = c["image"].as_str().unwrap().trim_end_matches("-cuda");
            // Third-party images (the limit store) run no binary of ours.
            if !image.starts_with("sluice-") {
                continue;
            }
            out.push((image.to_string(), c.clone()));
        }
    }
    out
}

fn env_value(c: &Value, name: &str) -> Option<String> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn containers_use_only_flags_and_variables_the_binaries_accept() {
    let containers = containers();
    assert!(containers.len() >= 3);
    // Provider tokens and the limit store's URL are named by the packs
    // (secret_key_ref.env, limit_store.url_env), not by the binaries.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");
    let pack: String = std::fs::read_dir(examples)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for (image, c) in containers {
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let out = Command::new(binary(&image))
            .arg(args[0])
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{image} {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
        // clap wraps help to the terminal's width: compare with the
        // whitespace normalised.
        let help = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for flag in args[1..].iter().filter(|a| a.starts_with("--")) {
            let name = flag.split('=').next().unwrap();
            assert!(
                help.contains(name),
                "{image} {} does not accept {name}",
                args[0]
            );
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap();
            // The worker reads the token from the variable SLUICE_HF_TOKEN_ENV
            // names. HF_HOME is the Hub cache: mistral.rs and the worker's
            // token lookup use it, and so does the gateway's tokenizer fetch.
            let worker_reads = image == "sluice-worker"
                && env_value(&c, "SLUICE_HF_TOKEN_ENV").as_deref() == Some(name);
            let hub_reads = name == "HF_HOME";
            let known = help.contains(&format!("[env: {name}"))
                || name == "RUST_LOG"
                || worker_reads
                || hub_reads
                || pack.contains(&format!("env: {name}"));
            assert!(
                known,
                "{image}: environment variable {name} is read by nothing"
            );
        }
        // Declared ports are the ones the listen settings bind.
        for p in c["ports"].as_array().into_iter().flatten() {
            let port = p["containerPort"].as_i64().unwrap().to_string();
            let bound = ["SLUICE_LISTEN", "SLUICE_HTTP_LISTEN", "SLUICE_GRPC_LISTEN"]
                .iter()
                .filter_map(|k| env_value(&c, k))
                .any(|v| v.ends_with(&format!(":{port}")));
            assert!(
                bound,
                "{image}: containerPort {port} is not bound by any *_LISTEN setting"
            );
        }
    }
}

fn probe_paths(image: &str) -> Vec<String> {
    containers()
        .into_iter()
        .filter(|(i, _)| i == image)
        .flat_map(|(_, c)| {
            ["readinessProbe", "livenessProbe"]
                .iter()
                .filter_map(|p| c[*p]["httpGet"]["path"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn probe_paths_are_served_by_the_binaries() {
    let gateway_paths = probe_paths("sluice-gateway");
    assert!(
        gateway_paths.contains(&"/readyz".to_string())
            && gateway_paths.contains(&"/healthz".to_string())
    );
    let gw = Gateway::start_with(
        "providers:\n  targets:\n    - id: t\n      provider: openai:m\n      base_url: http://127.0.0.1:9/v1\n",
        GatewayOptions::default(),
    );
    for path in &gateway_paths {
        let status = reqwest::get(gw.url(path)).await.unwrap().status();
        assert_eq!(status, 200, "gateway {path}");
    }
    let db = Database::create().await;
    let cp = ControlPlane::start(&db);
    let cp_paths = probe_paths("sluice-control-plane");
    assert!(!cp_paths.is_empty());
    for path in &cp_paths {
        let url = format!("http://127.0.0.1:{}{path}", cp.http_port);
        assert_eq!(
            reqwest::get(url).await.unwrap().status(),
            200,
            "control plane {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_probe_paths_are_served_by_the_worker() {
    let paths = probe_paths("sluice-worker");
    assert!(paths.contains(&"/readyz".to_string()) && paths.contains(&"/healthz".to_string()));
    let (_dir, model) = sluice_e2e::worker::tiny_model(3);
    let worker = sluice_e2e::worker::Worker::start(&["--model", model.to_str().unwrap()], &[]);
    worker.wait_ready(std::time::Duration::from_secs(60)).await;
    for path in &paths {
        let url = format!("http://{}{path}", worker.http);
        assert_eq!(
            reqwest::get(url).await.unwrap().status(),
            200,
            "worker {path}"
        );
    }
}

#[test]
fn workers_run_on_the_gpu_pool_keep_their_cache_and_are_found_through_a_headless_service() {
    let docs = documents();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let sts = find("StatefulSet", "sluice-worker");
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], 1);
    assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.present"], "true");
    assert!(
        pod["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "nvidia.com/gpu")
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let cache = env_value(c, "SLUICE_MODEL_CACHE").unwrap();
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| &m["name"] == claim)
        .expect("the model cache volume is mounted");
    assert!(cache.starts_with(mount["mountPath"].as_str().unwrap()));
    let svc = find("Service", sts["spec"]["serviceName"].as_str().unwrap());
    assert_eq!(svc["spec"]["clusterIP"], "None");
    assert_eq!(
        svc["spec"]["selector"],
        sts["spec"]["selector"]["matchLabels"]
    );
    // The token comes from a Secret, never a literal.
    let token = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            Some(e["name"].as_str().unwrap()) == env_value(c, "SLUICE_HF_TOKEN_ENV").as_deref()
        })
        .expect("the token variable is set");
    assert!(token["valueFrom"]["secretKeyRef"]["name"].is_string());
}

#[test]
fn gateways_authenticate_to_the_control_plane_with_a_mounted_secret() {
    let docs = documents();
    let deployment = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "StatefulSet" && d["metadata"]["name"] == "sluice-gateway")
        .expect("the gateway StatefulSet");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert!(env_value(c, "SLUICE_CONTROL_PLANE").is_some());
    let file = env_value(c, "SLUICE_CONTROL_PLANE_TOKEN_FILE")
        .expect("managed gateways must present a gateway token");
    // The file lies in a read-only mount of a Secret volume.
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| file.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
        .unwrap_or_else(|| panic!("{file} is in no volume mount"));
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(volume["secret"]["secretName"].is_string(), "{volume}");
    let item = &volume["secret"]["items"][0]["path"];
    assert_eq!(
        format!(
            "{}/{}",
            mount["mountPath"].as_str().unwrap(),
            item.as_str().unwrap()
        ),
        file
    );
}

#[test]
fn gateways_reach_the_limit_store_the_manifests_run() {
    let docs = documents();
    let (_, gw) = containers()
        .into_iter()
        .find(|(image, _)| image == "sluice-gateway")
        .unwrap();
    let url = env_value(&gw, "SLUICE_LIMIT_STORE_URL").expect("SLUICE_LIMIT_STORE_URL");
    let host_port = url
        .strip_prefix("redis://")
        .and_then(|r| r.split('/').next())
        .unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let service = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == host)
        .unwrap_or_else(|| panic!("no Service named {host}"));
    assert_eq!(
        service["spec"]["ports"][0]["port"]
            .as_i64()
            .map(|p| p.to_string())
            .as_deref(),
        Some(port)
    );
    let selected = &service["spec"]["selector"]["app.kubernetes.io/name"];
    // The gateway's egress and the store's ingress both allow the port.
    let policy = |name: &str| {
        docs.iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == "NetworkPolicy" && d["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    let allows = |rules: &Value, peer: &Value| {
        rules.as_array().unwrap().iter().any(|r| {
            let peers = r["to"].as_array().or(r["from"].as_array());
            peers.is_some_and(|ps| {
                ps.iter()
                    .any(|p| &p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == peer)
            }) && r["ports"][0]["port"]
                .as_i64()
                .map(|p| p.to_string())
                .as_deref()
                == Some(port)
        })
    };
    assert!(allows(&policy("gateway")["spec"]["egress"], selected));
    assert!(allows(
        &policy("limit-store")["spec"]["ingress"],
        &Value::from("sluice-gateway")
    ));
}

/// Issue #16: the audit spool and the snapshot cache outlive the pod — each
/// is a PersistentVolumeClaim of the gateway StatefulSet, not an emptyDir —
/// and the gateway id is the pod's stable name.
#[test]
fn gateway_spool_and_cache_live_on_persistent_volumes() {
    let docs = documents();
    let sts = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "StatefulSet" && d["metadata"]["name"] == "sluice-gateway")
        .expect("the gateway StatefulSet");
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let claims: Vec<&str> = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .expect("volumeClaimTemplates")
        .iter()
        .filter_map(|t| t["metadata"]["name"].as_str())
        .collect();
    let id = &c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SLUICE_GATEWAY_ID")
        .expect("SLUICE_GATEWAY_ID")["valueFrom"]["fieldRef"]["fieldPath"];
    assert_eq!(id, "metadata.name");
    for var in ["SLUICE_CACHE_DIR", "SLUICE_AUDIT_ROOT"] {
        let dir = env_value(c, var).unwrap_or_else(|| panic!("{var} is set"));
        let mount = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == dir.as_str())
            .unwrap_or_else(|| panic!("{var}={dir} is not a volume mount"));
        let name = mount["name"].as_str().unwrap();
        assert!(
            claims.contains(&name),
            "{var}={dir} is on volume '{name}', which is not one of the claims {claims:?}"
        );
        let shadowed = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["name"] == name);
        assert!(!shadowed, "'{name}' is also a pod volume (an emptyDir?)");
    }
}
