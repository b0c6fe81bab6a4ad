//! The dashboard's committed front-end dependencies (ui/dist/, embedded in the binary) are what
//! ui/build.sh makes from the npm packages pinned in ui/package-lock.json.

use std::process::Command;

#[test]
fn committed_ui_dist_matches_the_lockfile() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/ui/build.sh"))
        .arg("--check")
        .output()
        .expect("run ui/build.sh --check (needs npm)");
    assert!(
        out.status.success(),
        "ui/dist is stale or could not be rebuilt: run `bash ui/build.sh`\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
