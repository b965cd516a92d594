use super::*;
use crate::rebuild_catalog;

fn file(name: &str, rows: u64) -> FileRecord {
    FileRecord {
        name: name.into(),
        bytes: rows * 10,
        rows,
        checksum: 7,
    }
}

fn cols() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new("id", SqlType::BigInt, false),
        ColumnDef::new("kind", SqlType::Text, false),
    ]
}

/// Table `events`: one shard (id 1) with one placement on `node`.
fn single_shard_table(node: i64) -> NewTable {
    NewTable {
        name: "events".into(),
        kind: TableKind::SingleShard,
        distribution_column: None,
        colocation_id: None,
        columns: cols(),
        shards: vec![NewShard {
            shard_id: 1,
            shard_index: 0,
            hash_min: i32::MIN,
            hash_max: i32::MAX,
            placements: vec![(node, vec![])],
        }],
        pending_txn: None,
    }
}

#[test]
fn table_lifecycle_and_snapshot() {
    let c = Catalog::open_in_memory().unwrap();
    assert_eq!(c.reserve_shard_ids(2).unwrap(), vec![102008, 102009]);
    assert_eq!(c.reserve_shard_ids(1).unwrap(), vec![102010]);
    let (n1, created) = c.add_node("w1", 7400).unwrap();
    assert!(created);
    assert_eq!(c.add_node("w1", 7400).unwrap(), (n1, false));
    let (n2, _) = c.add_node("w2", 7400).unwrap();
    let t = c.create_table(&single_shard_table(n1)).unwrap();
    assert_eq!(t.shard_count, 1);
    assert!(matches!(
        c.create_table(&NewTable {
            name: "events".into(),
            kind: TableKind::SingleShard,
            distribution_column: None,
            colocation_id: None,
            columns: cols(),
            shards: vec![],
            pending_txn: None,
        }),
        Err(CatalogError::TableExists { .. })
    ));
    let snap = c.snapshot("events").unwrap();
    let pid = snap.shards[0].placements[0].placement_id;
    c.commit_files(&[
        NewFile {
            placement_id: pid,
            file: file("a.parquet", 5),
        },
        NewFile {
            placement_id: pid,
            file: file("b.parquet", 6),
        },
    ])
    .unwrap();
    assert_eq!(
        c.snapshot("events").unwrap().shards[0].placements[0].rows(),
        11
    );
    // a statement whose placement vanished commits nothing
    assert!(c
        .commit_files(&[
            NewFile {
                placement_id: pid,
                file: file("c.parquet", 1)
            },
            NewFile {
                placement_id: 999,
                file: file("d.parquet", 1)
            }
        ])
        .is_err());
    assert_eq!(
        c.snapshot("events").unwrap().shards[0].placements[0]
            .files
            .len(),
        2
    );

    // redistribute into two shards on two nodes
    let coloc = c.find_or_create_colocation(2, 1, "bigint", false).unwrap();
    assert_eq!(
        c.find_or_create_colocation(2, 1, "bigint", false).unwrap(),
        coloc
    );
    let t = c
        .replace_layout(
            t.table_id,
            TableKind::Distributed,
            Some("id"),
            Some(coloc),
            &[
                NewShard {
                    shard_id: 2,
                    shard_index: 0,
                    hash_min: i32::MIN,
                    hash_max: -1,
                    placements: vec![(n1, vec![file("x.parquet", 4)])],
                },
                NewShard {
                    shard_id: 3,
                    shard_index: 1,
                    hash_min: 0,
                    hash_max: i32::MAX,
                    placements: vec![(n2, vec![file("y.parquet", 7)])],
                },
            ],
        )
        .unwrap();
    assert_eq!(t.kind, TableKind::Distributed);
    let snap = c.snapshot("events").unwrap();
    assert_eq!(snap.shards.len(), 2);
    assert_eq!(
        snap.shards
            .iter()
            .map(|s| s.placements[0].rows())
            .sum::<u64>(),
        11
    );
    // the old shard dir is due for cleanup
    assert_eq!(c.due_cleanup().unwrap().len(), 1);

    // compaction swaps files atomically
    let p0 = snap.shards[0].placements[0].placement_id;
    c.replace_files(p0, &["x.parquet".into()], &file("m.parquet", 4), 0)
        .unwrap();
    assert!(c
        .replace_files(p0, &["x.parquet".into()], &file("m2.parquet", 4), 0)
        .is_err());
    assert_eq!(
        c.snapshot("events").unwrap().shards[0].placements[0].files,
        vec![file("m.parquet", 4)]
    );

    let t = c
        .add_column(t.table_id, &ColumnDef::new("v", SqlType::Double, false))
        .unwrap();
    assert_eq!(t.columns.len(), 3);
    assert!(c
        .add_column(t.table_id, &ColumnDef::new("v", SqlType::Double, false))
        .is_err());
    // NOT NULL is refused while rows exist (they would read NULL), accepted on an empty table.
    let strict = ColumnDef::new("w", SqlType::BigInt, true);
    assert!(matches!(
        c.add_column(t.table_id, &strict),
        Err(CatalogError::NullsInNotNullColumn { .. })
    ));

    c.truncate_table(t.table_id).unwrap();
    let t = c.add_column(t.table_id, &strict).unwrap();
    let added = t.columns.last().cloned().unwrap();
    assert_eq!(
        (&added.name, &added.sql_type, added.not_null),
        (&strict.name, &strict.sql_type, true),
        "NOT NULL is kept"
    );
    // An added column's stored name is one no file of the table has used.
    assert_ne!(added.stored_name, "w");

    // RENAME COLUMN keeps the stored name; DROP then ADD of the same name gets a new one.
    let t = c.rename_column(t.table_id, "w", "w2", &[]).unwrap();
    assert_eq!(
        t.columns
            .last()
            .map(|c| (c.name.as_str(), c.stored_name.clone())),
        Some(("w2", added.stored_name.clone()))
    );
    let t = c.drop_column(t.table_id, "v", &[]).unwrap();
    assert_eq!(
        t.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["id", "kind", "w2"]
    );
    let t = c.drop_column(t.table_id, "w2", &[]).unwrap();
    let t = c
        .add_column(t.table_id, &ColumnDef::new("w2", SqlType::BigInt, false))
        .unwrap();
    let readded = t.columns.last().cloned().unwrap();
    assert_ne!(
        readded.stored_name, added.stored_name,
        "a dropped column's values stay unseen"
    );
    assert!(matches!(
        c.rename_column(t.table_id, "w2", "id", &[]),
        Err(CatalogError::ColumnExists { .. })
    ));
    assert_eq!(
        c.snapshot("events")
            .unwrap()
            .shards
            .iter()
            .map(|s| s.placements[0].rows())
            .sum::<u64>(),
        0
    );
    assert_eq!(c.placement_count(n1).unwrap(), 1);
    c.drop_table(t.table_id).unwrap();
    assert!(c.table_by_name("events").unwrap().is_none());
    assert_eq!(c.placement_count(n1).unwrap(), 0);
}

#[test]
fn survives_reopen_and_keeps_cluster_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let id = {
        let c = Catalog::open(&path).unwrap();
        c.add_node("w1", 1).unwrap();
        c.set_setting("auto_rebalance", "on").unwrap();
        c.cluster_id().unwrap()
    };
    let c = Catalog::open(&path).unwrap();
    assert_eq!(c.cluster_id().unwrap(), id);
    assert_eq!(c.list_nodes().unwrap().len(), 1);
    assert_eq!(c.setting("auto_rebalance").unwrap(), "on");
    assert!(c.set_setting("nope", "1").is_err());
}

#[test]
fn node_file_names_and_cleanup_names() {
    let c = Catalog::open_in_memory().unwrap();
    let (n1, _) = c.add_node("w1", 7400).unwrap();
    let (n2, _) = c.add_node("w2", 7400).unwrap();
    let (n3, _) = c.add_node("w3", 7400).unwrap();
    let shard = |shard_id: i64, placements: Vec<(i64, Vec<FileRecord>)>| NewShard {
        shard_id,
        shard_index: shard_id - 10,
        hash_min: i32::MIN,
        hash_max: i32::MAX,
        placements,
    };
    let t = c
        .create_table(&NewTable {
            name: "events".into(),
            kind: TableKind::Distributed,
            distribution_column: Some("id".into()),
            colocation_id: None,
            columns: cols(),
            shards: vec![
                shard(10, vec![(n1, vec![file("a.parquet", 1)]), (n2, vec![])]),
                shard(11, vec![(n2, vec![file("b.parquet", 2)])]),
            ],
            pending_txn: None,
        })
        .unwrap();
    let other = c
        .create_table(&NewTable {
            name: "other".into(),
            kind: TableKind::SingleShard,
            distribution_column: None,
            colocation_id: None,
            columns: cols(),
            shards: vec![shard(12, vec![(n1, vec![file("o.parquet", 3)])])],
            pending_txn: None,
        })
        .unwrap();
    let snap = c.snapshot("events").unwrap();
    let on_n2 = snap.shards[0]
        .placements
        .iter()
        .find(|p| p.node_id == n2)
        .unwrap()
        .placement_id;
    c.commit_files(&[NewFile {
        placement_id: on_n2,
        file: file("a.parquet", 1),
    }])
    .unwrap();

    let (tid, oid) = (t.table_id, other.table_id);
    assert_eq!(
        c.node_file_names(n1).unwrap(),
        vec![
            (tid, 10, "a.parquet".to_string()),
            (oid, 12, "o.parquet".to_string())
        ]
    );
    assert_eq!(
        c.node_file_names(n2).unwrap(),
        vec![
            (tid, 10, "a.parquet".to_string()),
            (tid, 11, "b.parquet".to_string())
        ]
    );
    assert!(c.node_file_names(n3).unwrap().is_empty());
    assert!(c.node_file_names(999).unwrap().is_empty());
    assert!(c.node_cleanup_names(n1).unwrap().is_empty());

    // Compaction: the replaced file moves from the file list to a (not yet due) cleanup record.
    let on_n1 = snap.shards[0]
        .placements
        .iter()
        .find(|p| p.node_id == n1)
        .unwrap()
        .placement_id;
    c.replace_files(
        on_n1,
        &["a.parquet".into()],
        &file("m.parquet", 1),
        3_600_000,
    )
    .unwrap();
    assert_eq!(
        c.node_file_names(n1).unwrap(),
        vec![
            (tid, 10, "m.parquet".to_string()),
            (oid, 12, "o.parquet".to_string())
        ]
    );
    assert!(c.due_cleanup().unwrap().is_empty());
    assert_eq!(
        c.node_cleanup_names(n1).unwrap(),
        vec![(tid, 10, Some("a.parquet".to_string()))]
    );

    // Drop: the files are gone from the list; the shard directories are cleanup records.
    c.drop_table(tid).unwrap();
    assert_eq!(
        c.node_file_names(n1).unwrap(),
        vec![(oid, 12, "o.parquet".to_string())]
    );
    assert!(c.node_file_names(n2).unwrap().is_empty());
    assert_eq!(
        c.node_cleanup_names(n1).unwrap(),
        vec![(tid, 10, Some("a.parquet".to_string())), (tid, 10, None)]
    );
    let mut n2_cleanup = c.node_cleanup_names(n2).unwrap();
    n2_cleanup.sort();
    assert_eq!(n2_cleanup, vec![(tid, 10, None), (tid, 11, None)]);
    assert!(c.node_cleanup_names(n3).unwrap().is_empty());
}

/// Reads of an on-disk catalog use their own connections: one that starts while a write
/// transaction is open (and not yet committed) finishes, and sees the state before it.
#[test]
fn reads_do_not_wait_for_an_open_write() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(Catalog::open(&dir.path().join("catalog.db")).unwrap());
    let before = c.cluster_id().unwrap();
    c.write(|tx| {
        tx.execute(
            "UPDATE meta SET value = 'changed' WHERE key = 'cluster_id'",
            [],
        )?;
        let reader = Arc::clone(&c);
        let (done, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(reader.cluster_id());
        });
        // A read on the writer's connection would wait for this closure: it never ends.
        let read = seen
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a read finishes while a write transaction is open");
        assert_eq!(
            read.unwrap(),
            before,
            "the read sees the last committed state"
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(
        c.cluster_id().unwrap(),
        "changed",
        "and the commit after it"
    );
}

/// The snapshot cache hands out a snapshot again only while no write has ended since; a
/// snapshot read while a write is open shows the state before it and is not served after it.
/// And the begin time of the write in flight bounds what it may decide (cleanup relies on it).
#[test]
fn cached_snapshots_follow_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(Catalog::open(&dir.path().join("catalog.db")).unwrap());
    let (n1, _) = c.add_node("w1", 7400).unwrap();
    c.create_table(&single_shard_table(n1)).unwrap();
    let first = c.snapshot("events").unwrap();
    assert_eq!(c.snapshot("events").unwrap(), first, "served again");
    let pid = first.shards[0].placements[0].placement_id;
    let before = c.generation();
    assert_eq!(c.generation_began_ms(before + 1), None, "not begun yet");

    let started = now_ms();
    c.write(|tx| {
        let began = c
            .generation_began_ms(c.generation() + 1)
            .expect("the open write has begun");
        assert!(began >= started && began <= now_ms());
        insert_file(tx, pid, &file("a.parquet", 5), now_ms())?;
        let reader = Arc::clone(&c);
        let (done, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(reader.snapshot("events"));
        });
        let during = seen
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a snapshot is read while a write is open");
        assert_eq!(during.unwrap().shards[0].placements[0].rows(), 0);
        Ok(())
    })
    .unwrap();
    assert_eq!(c.generation(), before + 1);
    assert_eq!(
        c.snapshot("events").unwrap().shards[0].placements[0].rows(),
        5,
        "the commit is seen at once"
    );

    // A progress record changes no table: the cached snapshot is served on, not read again.
    let cached_at = |c: &Catalog| c.snapshots.lock().unwrap().get("events").map(|(at, _)| *at);
    assert_eq!(cached_at(&c), Some(before + 1));
    c.write_progress(|tx| {
        tx.execute("UPDATE meta SET value = value WHERE key = 'cluster_id'", [])?;
        Ok(())
    })
    .unwrap();
    assert_eq!(c.generation(), before + 2);
    assert_eq!(
        c.snapshot("events").unwrap().shards[0].placements[0].rows(),
        5
    );
    assert_eq!(cached_at(&c), Some(before + 1), "served from the cache");
    let before = before + 1;

    // A failed write ends its generation too; the cached snapshot stays right.
    let failed: Result<()> = c.write(|_| Err(CatalogError::TableNotFound { name: "x".into() }));
    assert!(failed.is_err());
    assert_eq!(c.generation(), before + 2);
    assert_eq!(
        c.snapshot("events").unwrap().shards[0].placements[0].rows(),
        5
    );
    c.drop_table(c.table_by_name("events").unwrap().unwrap().table_id)
        .unwrap();
    assert!(matches!(
        c.snapshot("events"),
        Err(CatalogError::TableNotFound { .. })
    ));
}

#[test]
fn progress_commits_are_visible_and_leave_later_commits_synced() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let synchronous = |c: &Catalog| -> i64 {
        c.lock()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    };
    // A progress write of a meta row, and the row as read back.
    let put = |c: &Catalog, value: &str| {
        c.write_progress(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('deferred', ?1)",
                [value],
            )?;
            Ok(())
        })
    };
    let get = |c: &Catalog| -> String {
        c.read(|tx| {
            Ok(
                tx.query_row("SELECT value FROM meta WHERE key = 'deferred'", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap()
    };
    assert_eq!(synchronous(&c), 2, "FULL by default");
    put(&c, "yes").unwrap();
    assert_eq!(get(&c), "yes");
    assert_eq!(synchronous(&c), 2, "back to FULL after a deferred commit");
    // Also after one that fails (and rolls back).
    assert!(put(&c, "again").is_err(), "duplicate key");
    assert_eq!(synchronous(&c), 2, "back to FULL after a failed one");
    // And it survives a reopen (the process went away, not the machine).
    drop(c);
    let c = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    assert_eq!(get(&c), "yes");
}

#[test]
fn setting_values_are_checked_and_stored_canonically() {
    for (name, default, _) in SETTINGS_DEFAULTS {
        let kind = SettingKind::of(name).expect("every setting has a kind");
        assert_eq!(
            kind.canonical(default).as_deref(),
            Some(*default),
            "{name}'s default is one of its values"
        );
    }
    let cases = [
        ("auto_rebalance", "Yes", Some("on")),
        ("auto_rebalance", "0", Some("off")),
        ("auto_rebalance", "maybe", None),
        ("rebalance.max_bandwidth_mb", "UNLIMITED", Some("unlimited")),
        ("rebalance.max_bandwidth_mb", "0.003", Some("0.003")),
        ("rebalance.max_bandwidth_mb", "-1", None),
        ("rebalance.max_bandwidth_mb", "NaN", None),
        ("rebalance.max_bandwidth_mb", "1e309", None),
        ("rebalance.max_bandwidth_mb", "0", None),
        ("rebalance.max_concurrent_moves", "0", None),
        ("rebalance.max_concurrent_moves", "2.5", None),
        ("rebalance.max_concurrent_moves", " 4 ", Some("4")),
        ("rebalance.task_retries", "0", Some("0")),
        ("rebalance.task_retries", "-1", None),
    ];
    for (name, value, expected) in cases {
        let kind = SettingKind::of(name).expect("known setting");
        assert_eq!(
            kind.canonical(value).as_deref(),
            expected,
            "{name} = {value:?}"
        );
    }
    assert_eq!(SettingKind::of("rebalance.unknown"), None);

    let c = Catalog::open_in_memory().expect("catalog");
    assert!(c
        .set_setting("rebalance.max_concurrent_moves", "0")
        .is_err());
    assert_eq!(
        c.setting("rebalance.max_concurrent_moves").expect("read"),
        "2"
    );
    c.set_setting("auto_rebalance", "TRUE").expect("valid");
    assert_eq!(c.setting("auto_rebalance").expect("read"), "on");
}

#[test]
fn sequences_hand_out_each_value_once_across_reopens_and_go_with_their_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let serial = |table: &str| {
        ColumnDef::new("id", SqlType::Integer, true).with_default(Some(ColumnDefault::Serial {
            sequence: format!("{table}_id_seq"),
        }))
    };
    let table_id = {
        let c = Catalog::open(&path).unwrap();
        let (n1, _) = c.add_node("w1", 1).unwrap();
        let mut new = single_shard_table(n1);
        new.columns = vec![
            serial("events"),
            ColumnDef::new("v", SqlType::Text, false)
                .with_default(Some(ColumnDefault::Expr("'x'".into()))),
        ];
        let t = c.create_table(&new).unwrap();
        assert_eq!(
            t.columns[0].default,
            Some(ColumnDefault::Serial {
                sequence: "events_id_seq".into()
            })
        );
        assert_eq!(
            t.columns[1].default,
            Some(ColumnDefault::Expr("'x'".into()))
        );
        assert_eq!(c.next_serial_values(t.table_id, "id", 3).unwrap().1, 1);
        assert_eq!(c.next_serial_values(t.table_id, "id", 2).unwrap().1, 4);
        // More than what is left of the reservation: a new one, past the old.
        assert_eq!(c.next_serial_values(t.table_id, "id", 40).unwrap().1, 33);
        t.table_id
    };
    // Values reserved and not handed out before a restart are skipped, never repeated.
    let c = Catalog::open(&path).unwrap();
    assert_eq!(c.next_serial_values(table_id, "id", 1).unwrap().1, 73);
    c.drop_table(table_id).unwrap();
    assert!(c.next_serial_values(table_id, "id", 1).is_err());
}

#[test]
fn indexes_share_the_relation_namespace_and_go_with_their_table() {
    let c = Catalog::open_in_memory().unwrap();
    let (n1, _) = c.add_node("w1", 7400).unwrap();
    let t = c.create_table(&single_shard_table(n1)).unwrap();
    let index = |name: &str| IndexDef {
        name: name.into(),
        table_id: t.table_id,
        unique: false,
        definition: format!("CREATE INDEX {name} ON public.events USING btree (id)"),
        constraint: None,
    };
    c.create_index(&index("events_id_idx")).unwrap();
    assert!(matches!(
        c.create_index(&index("events_id_idx")),
        Err(CatalogError::TableExists { .. })
    ));
    assert!(matches!(
        c.create_index(&index("events")),
        Err(CatalogError::TableExists { .. })
    ));
    c.create_view("v", "SELECT 1", false).unwrap();
    assert!(matches!(
        c.create_index(&index("v")),
        Err(CatalogError::TableExists { .. })
    ));
    assert_eq!(c.indexes().unwrap(), vec![index("events_id_idx")]);
    assert!(c.drop_index("events_id_idx").unwrap());
    assert!(!c.drop_index("events_id_idx").unwrap());
    c.create_index(&index("again")).unwrap();
    c.drop_table(t.table_id).unwrap();
    assert!(c.indexes().unwrap().is_empty());
}

#[test]
fn key_constraints_round_trip_and_follow_schema_changes() {
    let c = Catalog::open_in_memory().unwrap();
    let (n1, _) = c.add_node("w1", 7400).unwrap();
    let t = c.create_table(&single_shard_table(n1)).unwrap();
    let pkey = IndexDef {
        name: "events_pkey".into(),
        table_id: t.table_id,
        unique: true,
        definition: "CREATE UNIQUE INDEX events_pkey ON public.events USING btree (id)".into(),
        constraint: Some(KeyConstraint::PrimaryKey),
    };
    c.create_index(&pkey).unwrap();
    assert_eq!(c.indexes().unwrap(), vec![pkey.clone()]);
    let renamed = "CREATE UNIQUE INDEX events_pkey ON public.events USING btree (ident)";
    c.rename_column(
        t.table_id,
        "id",
        "ident",
        &[IndexUpdate::Redefine {
            name: "events_pkey".into(),
            definition: renamed.into(),
        }],
    )
    .unwrap();
    assert_eq!(c.indexes().unwrap()[0].definition, renamed);
    c.drop_column(
        t.table_id,
        "ident",
        &[IndexUpdate::Drop {
            name: "events_pkey".into(),
        }],
    )
    .unwrap();
    assert!(c.indexes().unwrap().is_empty());
    // A stored constraint type this binary does not know fails loudly.
    c.create_index(&pkey).unwrap();
    c.write(|tx| {
        tx.execute("UPDATE indexes SET constraint_type = 'x'", [])?;
        Ok(())
    })
    .unwrap();
    assert!(matches!(c.indexes(), Err(CatalogError::Invalid { .. })));
}

/// Keeps every journal entry in memory, as the coordinator's journal keeps them on workers.
#[derive(Default)]
struct MemoryJournal {
    entries: Mutex<Vec<(u64, Vec<u8>)>>,
    waited: Mutex<Vec<u64>>,
}

impl CommitJournal for MemoryJournal {
    fn committed(&self, seq: u64, changeset: Vec<u8>) {
        self.entries.lock().unwrap().push((seq, changeset));
    }

    fn wait_durable(&self, seq: u64) {
        self.waited.lock().unwrap().push(seq);
    }
}

/// Every row of every table of the catalog file at `path`, as text, table by table.
fn dump(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"))
            .unwrap();
        let n = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        out.push(format!("{table}: {}", rows.join("; ")));
    }
    out
}

/// The journal's base plus its changesets make the same catalog again, row for row: nodes,
/// tables, layout changes, files committed and replaced, a dropped table, settings, a task
/// whose progress (not journaled) changed between two journaled writes. Every state write
/// waited for its entry; progress writes made none.
#[test]
fn journal_base_and_changesets_rebuild_the_same_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.db");
    let c = Catalog::open(&db).unwrap();
    let (n0, _) = c.add_node("w0", 7400).unwrap();
    let journal = Arc::new(MemoryJournal::default());
    c.set_journal(Arc::clone(&journal) as Arc<dyn CommitJournal>)
        .unwrap();
    let (base_seq, base) = c.journal_base().unwrap();
    assert_eq!(base_seq, 0);

    let (n1, _) = c.add_node("w1", 7400).unwrap();
    let t = c.create_table(&single_shard_table(n0)).unwrap();
    let pid = c.snapshot("events").unwrap().shards[0].placements[0].placement_id;
    c.commit_files(&[NewFile {
        placement_id: pid,
        file: file("a.parquet", 5),
    }])
    .unwrap();
    let coloc = c.find_or_create_colocation(2, 1, "bigint", false).unwrap();
    c.replace_layout(
        t.table_id,
        TableKind::Distributed,
        Some("id"),
        Some(coloc),
        &[
            NewShard {
                shard_id: 2,
                shard_index: 0,
                hash_min: i32::MIN,
                hash_max: -1,
                placements: vec![(n0, vec![file("x.parquet", 4)])],
            },
            NewShard {
                shard_id: 3,
                shard_index: 1,
                hash_min: 0,
                hash_max: i32::MAX,
                placements: vec![(n1, vec![file("y.parquet", 1)])],
            },
        ],
    )
    .unwrap();
    let mut other = single_shard_table(n1);
    other.name = "dropped".into();
    other.shards[0].shard_id = 9;
    let dropped = c.create_table(&other).unwrap();
    c.drop_table(dropped.table_id).unwrap();
    c.set_setting("rebalance.max_bandwidth_mb", "40").unwrap();
    // A REPLACE (its delete is logged too) and a REAL that JSON's 15 digits would round.
    c.write(|tx| {
        tx.execute("INSERT INTO meta (key, value) VALUES ('replaced', 'a')", [])?;
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('replaced', 'b')", [])?;
        tx.execute(
            "INSERT INTO jobs (job_type, description, transfer_mode, max_bandwidth_mb, created_at_ms)
             VALUES ('rebalance', 'd', 'auto', 0.1 + 0.2, 1)",
            [],
        )?;
        Ok(())
    })
    .unwrap();
    // A state write, a progress write of the same row, and a state write after it.
    c.write(|tx| {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('marker', 'state')",
            [],
        )?;
        Ok(())
    })
    .unwrap();
    let progress_entries = journal.entries.lock().unwrap().len();
    c.write_progress(|tx| {
        tx.execute(
            "UPDATE meta SET value = 'progress' WHERE key = 'marker'",
            [],
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        journal.entries.lock().unwrap().len(),
        progress_entries,
        "a progress write is not journaled"
    );
    drop(c);

    let entries = journal.entries.lock().unwrap().clone();
    let seqs: Vec<u64> = entries.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        *journal.waited.lock().unwrap(),
        seqs,
        "each write waited for its entry"
    );
    let rebuilt = dir.path().join("rebuilt.db");
    let changesets: Vec<Vec<u8>> = entries.into_iter().map(|(_, cs)| cs).collect();
    let summary = rebuild_catalog(&rebuilt, &base, base_seq, &changesets).unwrap();
    assert_eq!(summary.seq, changesets.len() as u64);
    assert_eq!(summary.tables, 1);
    assert_eq!(summary.nodes, 2);
    let mut want = dump(&db);
    let mut got = dump(&rebuilt);
    // The progress write was not journaled: the rebuilt catalog has the state write's value.
    for rows in [&mut want, &mut got] {
        for r in rows.iter_mut() {
            *r = r.replace("Text(\"progress\")", "Text(\"state\")");
        }
    }
    assert_eq!(got, want);
    // It opens as a catalog, and refuses to be overwritten.
    let reopened = Catalog::open(&rebuilt).unwrap();
    assert_eq!(reopened.snapshot("events").unwrap().shards.len(), 2);
    assert!(rebuild_catalog(&rebuilt, &base, base_seq, &changesets).is_err());
    // Changesets that do not fit the base (applied twice) fail the rebuild and leave
    // nothing behind.
    let elsewhere = dir.path().join("broken.db");
    let twice: Vec<Vec<u8>> = changesets.iter().chain(&changesets).cloned().collect();
    assert!(rebuild_catalog(&elsewhere, &base, base_seq, &twice).is_err());
    assert!(!elsewhere.exists());
}

/// A value stored before settings were checked goes back to its default when the catalog
/// opens (every typed read would fail on it), and another spelling becomes the one spelling.
#[test]
fn settings_stored_unchecked_are_repaired_when_the_catalog_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let c = Catalog::open(&path).unwrap();
        c.write(|tx| {
            tx.execute_batch(
                "INSERT INTO settings (name, value) VALUES
                     ('rebalance.max_concurrent_moves', '0'),
                     ('auto_rebalance', 'YES'),
                     ('rebalance.task_retries', '3')",
            )?;
            Ok(())
        })
        .unwrap();
        assert!(c.cluster_settings().is_err());
    }
    let c = Catalog::open(&path).unwrap();
    let s = c.cluster_settings().unwrap();
    assert_eq!(s.max_concurrent_moves, 2, "back to the default");
    assert!(s.auto_rebalance);
    assert_eq!(s.task_retries, 3, "a good value stays");
    assert_eq!(c.setting("auto_rebalance").unwrap(), "on");
}
