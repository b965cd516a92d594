use super::{backup_catalog, restore_catalog};
use crate::Catalog;

#[test]
fn a_backup_of_a_live_catalog_restores_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("coordinator/catalog.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let catalog = Catalog::open(&db).unwrap();
    catalog.add_node("w1", 7400).unwrap();
    // Taken while the catalog is open, as a running coordinator holds it.
    let backup = dir.path().join("backup-1");
    backup_catalog(&db, &backup).unwrap();
    assert!(
        backup_catalog(&db, &backup).is_err(),
        "a backup is never overwritten"
    );
    catalog.add_node("w2", 7400).unwrap();
    drop(catalog);

    let replaced = restore_catalog(&backup, &db)
        .unwrap()
        .expect("the old catalog is kept");
    let restored = Catalog::open(&db).unwrap();
    let nodes: Vec<String> = restored
        .list_nodes()
        .unwrap()
        .iter()
        .map(|n| n.addr())
        .collect();
    assert_eq!(nodes, ["w1:7400"]);
    // The catalog it replaced, with its last write, is still there.
    let kept = Catalog::open(&replaced).unwrap();
    assert_eq!(kept.list_nodes().unwrap().len(), 2);
}

#[test]
fn a_restore_refuses_what_is_not_a_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    std::fs::write(backup.join("catalog.db"), b"not a database at all").unwrap();
    let db = dir.path().join("catalog.db");
    assert!(restore_catalog(&backup, &db).is_err());
    assert!(!db.exists(), "nothing was put in place");
    assert!(restore_catalog(&dir.path().join("missing"), &db).is_err());
}
