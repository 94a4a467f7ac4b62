//! The Kubernetes manifests in `deploy/` name what the binary has: each
//! container runs a `weir` command with flags it takes, listens on the
//! ports it declares, services route to those ports, workers reach the
//! coordinator's service, and the configuration's variables are options.

#[path = "support/cli.rs"]
mod cli;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cli::{output, text, weir};
use serde::Deserialize;
use serde_yaml::Value;

/// Every document of every manifest.
fn manifests() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/");
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("reads");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            documents.push((file.display().to_string(), value));
        }
    }
    documents
}

fn kind(document: &Value) -> &str {
    document["kind"].as_str().expect("a kind")
}

fn name(document: &Value) -> &str {
    document["metadata"]["name"].as_str().expect("a name")
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map(str::to_string).unwrap_or_default();
                    (k.as_str().expect("a label").to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `weir <command> --help`.
fn help(command: &str) -> String {
    let ran = output({
        let mut c = weir(&std::env::temp_dir());
        c.args([command, "--help"]);
        c
    });
    assert!(
        ran.status.success(),
        "weir {command}: {}",
        text(&ran.stderr)
    );
    text(&ran.stdout)
}

/// The value of `flag` in `args`.
fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

#[test]
fn the_manifests_name_commands_flags_and_ports_the_binary_has() {
    let documents = manifests();
    let kinds: BTreeSet<&str> = documents.iter().map(|(_, d)| kind(d)).collect();
    for expected in ["ConfigMap", "Deployment", "Service"] {
        assert!(kinds.contains(expected), "no {expected} in {kinds:?}");
    }
    // Containers: their command exists, each flag is one of it, and the
    // port they bind is one they declare.
    let mut commands = BTreeSet::new();
    let mut pods: Vec<(BTreeMap<String, String>, BTreeSet<u64>)> = Vec::new();
    let mut coordinator_urls = Vec::new();
    for (file, deployment) in documents.iter().filter(|(_, d)| kind(d) == "Deployment") {
        let template = &deployment["spec"]["template"];
        let pod_labels = labels(&template["metadata"]["labels"]);
        assert_eq!(
            labels(&deployment["spec"]["selector"]["matchLabels"]),
            pod_labels,
            "{file}: the selector selects the pods"
        );
        let mut ports = BTreeSet::new();
        for container in template["spec"]["containers"]
            .as_sequence()
            .expect("containers")
        {
            let args: Vec<String> = container["args"]
                .as_sequence()
                .expect("args")
                .iter()
                .map(|a| a.as_str().expect("a string").to_string())
                .collect();
            let command = &args[0];
            let help = help(command);
            for flag in args.iter().filter(|a| a.starts_with("--")) {
                assert!(
                    help.contains(&format!("{flag} ")),
                    "{file}: weir {command} has no {flag}"
                );
            }
            let declared: BTreeSet<u64> = container["ports"]
                .as_sequence()
                .expect("ports")
                .iter()
                .map(|p| p["containerPort"].as_u64().expect("a port"))
                .collect();
            let bind = value_of(&args, "--bind").expect("--bind HOST:PORT");
            let bound: u64 = bind
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse().ok())
                .expect("HOST:PORT");
            assert!(
                declared.contains(&bound),
                "{file}: binds {bound}, declares {declared:?}"
            );
            if !bind.starts_with("127.") {
                assert!(
                    value_of(&args, "--token-file").is_some(),
                    "{file}: listens beyond loopback without a token"
                );
            }
            if let Some(url) = value_of(&args, "--coordinator") {
                coordinator_urls.push(url.to_string());
            }
            ports.extend(declared);
            commands.insert(command.clone());
        }
        pods.push((pod_labels, ports));
    }
    assert_eq!(
        commands,
        BTreeSet::from(["coordinator".to_string(), "worker".to_string()])
    );
    // Services route to ports their pods declare; workers reach the
    // coordinator's service.
    let mut services = BTreeMap::new();
    for (file, service) in documents.iter().filter(|(_, d)| kind(d) == "Service") {
        let selector = labels(&service["spec"]["selector"]);
        let (_, ports) = pods
            .iter()
            .find(|(l, _)| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{file}: the service selects no pod"));
        for port in service["spec"]["ports"].as_sequence().expect("ports") {
            let target = port["targetPort"].as_u64().expect("a target port");
            assert!(ports.contains(&target), "{file}: no pod port {target}");
            let exposed = port["port"].as_u64().expect("a port");
            services.insert(format!("http://{}:{exposed}", name(service)), target);
        }
    }
    assert!(!coordinator_urls.is_empty());
    for url in coordinator_urls {
        assert!(
            services.contains_key(&url),
            "{url} is no service: {services:?}"
        );
    }
    // The configuration's variables are weir's options.
    let variables: BTreeSet<String> = weir_scheduler::CONFIG_KEYS
        .iter()
        .map(|(key, _)| weir::config::variable_of(key))
        .collect();
    for (file, map) in documents.iter().filter(|(_, d)| kind(d) == "ConfigMap") {
        for (key, _) in map["data"].as_mapping().expect("data") {
            let key = key.as_str().expect("a key");
            assert!(variables.contains(key), "{file}: {key} is no option");
        }
    }
}
