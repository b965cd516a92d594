use super::*;

fn base(epoch: &str, seq: u64) -> BaseHeader {
    BaseHeader {
        cluster_id: "c".into(),
        epoch: epoch.into(),
        seq,
    }
}

fn append(
    store: &JournalStore,
    epoch: &str,
    first_seq: u64,
    entries: &[&[u8]],
) -> Result<JournalStatus> {
    let header = AppendHeader {
        epoch: epoch.into(),
        first_seq,
        lengths: entries.iter().map(|e| e.len() as u64).collect(),
    };
    store.append(header, &entries.concat())
}

#[test]
fn entries_follow_their_base_in_order_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path());
    assert_eq!(store.status().unwrap(), None);
    assert!(store.read().unwrap().is_none());
    // Nothing to append to before a base.
    assert!(append(&store, "e1", 1, &[b"x"]).is_err());

    store.put_base(base("e1", 10), b"image-1").unwrap();
    append(&store, "e1", 11, &[b"a", b"bb"]).unwrap();
    let status = append(&store, "e1", 13, &[b"ccc"]).unwrap();
    assert_eq!(
        status,
        JournalStatus {
            epoch: "e1".into(),
            base_seq: 10,
            last_seq: 13
        }
    );
    // A gap, a repeat and another epoch are refused and change nothing.
    for (epoch, first) in [("e1", 15), ("e1", 13), ("e2", 14)] {
        let err = append(&store, epoch, first, &[b"zz"]).unwrap_err();
        assert!(err.to_string().contains("journal gap"), "{err}");
    }
    // Announced lengths must match the bytes sent.
    let lying = AppendHeader {
        epoch: "e1".into(),
        first_seq: 14,
        lengths: vec![u64::MAX, 2],
    };
    assert!(store.append(lying, b"abc").is_err());

    drop(store);
    let store = JournalStore::new(dir.path());
    assert_eq!(store.status().unwrap().unwrap().last_seq, 13);
    let copy = store.read().unwrap().unwrap();
    assert_eq!(copy.base, b"image-1");
    assert_eq!(
        copy.entries,
        vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
    );
    append(&store, "e1", 14, &[b"d"]).unwrap();

    // A new base (a new coordinator run) replaces base and log.
    store.put_base(base("e2", 3), b"image-2").unwrap();
    let copy = store.read().unwrap().unwrap();
    assert_eq!(copy.status.base_seq, 3);
    assert_eq!(copy.base, b"image-2");
    assert!(copy.entries.is_empty());
    let logs: Vec<String> = fs::read_dir(dir.path().join(DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("log-"))
        .collect();
    assert_eq!(logs, vec!["log-e2-3".to_string()]);
}

/// A crash in the middle of an append leaves a torn record: it is not an entry (it was never
/// acknowledged), and the next append cuts it off.
#[test]
fn a_torn_last_record_is_ignored_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path());
    store.put_base(base("e", 0), b"img").unwrap();
    append(&store, "e", 1, &[b"first"]).unwrap();
    drop(store);
    let log = dir.path().join(DIR).join("log-e-0");
    let mut bytes = fs::read(&log).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 5]);
    fs::write(&log, &bytes).unwrap();

    let store = JournalStore::new(dir.path());
    assert_eq!(store.status().unwrap().unwrap().last_seq, 1);
    append(&store, "e", 2, &[b"second"]).unwrap();
    drop(store);
    let store = JournalStore::new(dir.path());
    let copy = store.read().unwrap().unwrap();
    assert_eq!(copy.entries, vec![b"first".to_vec(), b"second".to_vec()]);
    assert!(fs::metadata(&log).unwrap().len() > whole as u64);
    // A damaged base is an error, not an empty journal.
    let base_path = dir.path().join(DIR).join("base");
    let mut base_bytes = fs::read(&base_path).unwrap();
    let last = base_bytes.len() - 5;
    base_bytes[last] ^= 0xff;
    fs::write(&base_path, &base_bytes).unwrap();
    assert!(JournalStore::new(dir.path()).read().is_err());
}
