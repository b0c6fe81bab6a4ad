//! Every manifest in tests/fixtures/invalid/ is rejected by the API server (server-side dry
//! run) with a message naming the field given in its first line (`# expect: <text>`); every
//! sample in config/samples/ is accepted.

mod support;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use lopper::crd::Study;

fn study_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::erase::<Study>(&());
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn docs(path: &std::path::Path) -> Vec<DynamicObject> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml::Value| v.get("kind").and_then(|k| k.as_str()) == Some("Study"))
        .map(|v| serde_yaml::from_value(v).unwrap())
        .collect()
}

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(support::repo_root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn invalid_studies_are_rejected_at_admission() {
    let client = support::cluster().await;
    support::apply_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "invalid").await;
    let api = study_api(&client, &ns.name);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let fixtures = files("tests/fixtures/invalid");
    assert!(fixtures.len() >= 20, "at least 20 invalid manifests");
    let mut failures = Vec::new();
    for path in &fixtures {
        let text = std::fs::read_to_string(path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks `# expect:`", path.display()))
            .trim()
            .to_string();
        let obj = docs(path).remove(0);
        match api.create(&dry, &obj).await {
            Ok(_) => failures.push(format!("{}: accepted", path.display())),
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(&expect) => {}
            Err(e) => failures.push(format!("{}: want {expect:?} in: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for path in files("config/samples") {
        for obj in docs(&path) {
            if let Err(e) = api.create(&dry, &obj).await {
                panic!("sample {} rejected: {e}", path.display());
            }
        }
    }
}
