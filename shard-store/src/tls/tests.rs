use super::*;

use std::path::Path;
use std::process::Command;

/// Runs `docker/make-certs.sh --out DIR NAME...` (the script operators use): a cluster CA
/// and a certificate per name. `None` (after printing `skipped: ...`) without openssl, which
/// fails the test under `CI=true`.
pub(crate) fn make_certs(dir: &Path, names: &[&str]) -> Option<()> {
    if Command::new("openssl").arg("version").output().is_err() {
        let why = "skipped: openssl is not installed (docker/make-certs.sh needs it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("{why}");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/make-certs.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("--out")
        .arg(dir)
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make-certs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(())
}

/// The files of node `name` in a directory made by [`make_certs`].
pub(crate) fn files(dir: &Path, name: &str) -> ClusterTlsFiles {
    ClusterTlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}-key.pem")),
    }
}

fn refusal(files: &ClusterTlsFiles) -> String {
    match ClusterTls::load(files) {
        Ok(_) => panic!("{files:?} was accepted"),
        Err(ShardStoreError::Config { message }) => message,
        Err(other) => panic!("{files:?}: not a configuration error: {other:?}"),
    }
}

#[test]
fn bad_material_is_refused_at_load_naming_the_file() {
    let cluster = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    if make_certs(cluster.path(), &["127.0.0.1", "node2"]).is_none()
        || make_certs(other.path(), &["127.0.0.1"]).is_none()
    {
        return;
    }
    let good = files(cluster.path(), "127.0.0.1");
    ClusterTls::load(&good).unwrap();

    let missing = ClusterTlsFiles {
        cert: "/nonexistent.pem".into(),
        ..good.clone()
    };
    let message = refusal(&missing);
    assert!(message.contains("--tls-cert /nonexistent.pem"), "{message}");

    let garbage = cluster.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for (files, flag) in [
        (
            ClusterTlsFiles {
                ca: garbage.clone(),
                ..good.clone()
            },
            "garbage.pem: no PEM certificate",
        ),
        (
            ClusterTlsFiles {
                cert: garbage.clone(),
                ..good.clone()
            },
            "garbage.pem: no PEM certificate",
        ),
        (
            ClusterTlsFiles {
                key: garbage.clone(),
                ..good.clone()
            },
            "garbage.pem: no PEM private key",
        ),
    ] {
        let message = refusal(&files);
        assert!(message.contains(flag), "{message}");
    }

    // The key of another node.
    let message = refusal(&ClusterTlsFiles {
        key: cluster.path().join("node2-key.pem"),
        ..good.clone()
    });
    assert!(message.contains("does not fit --tls-cert"), "{message}");

    // A certificate of another cluster: no peer would accept it.
    let message = refusal(&ClusterTlsFiles {
        cert: other.path().join("127.0.0.1.pem"),
        key: other.path().join("127.0.0.1-key.pem"),
        ..good.clone()
    });
    assert!(
        message.contains("is not accepted by the cluster CA"),
        "{message}"
    );
}

#[test]
fn host_of_strips_port_and_brackets() {
    assert_eq!(host_of("worker1:7400"), "worker1");
    assert_eq!(host_of("127.0.0.1:7400"), "127.0.0.1");
    assert_eq!(host_of("[::1]:7400"), "::1");
    assert_eq!(host_of("worker1"), "worker1");
    assert!(matches!(
        server_name("127.0.0.1:1").unwrap(),
        ServerName::IpAddress(_)
    ));
    assert!(matches!(
        server_name("worker1:1").unwrap(),
        ServerName::DnsName(_)
    ));
}
