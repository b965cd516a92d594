use super::*;

fn defaults() -> Vec<(&'static str, &'static str)> {
    SETTINGS_DEFAULTS.iter().map(|(n, v, _)| (*n, *v)).collect()
}

#[test]
fn every_default_is_a_value_of_its_kind() {
    for (name, value, _) in SETTINGS_DEFAULTS {
        let kind = SettingKind::of(name).unwrap_or_else(|| panic!("{name} has no kind"));
        assert!(kind.canonical(value).is_some(), "{name} = {value}");
    }
    let s = ClusterSettings::parse(defaults()).unwrap();
    assert_eq!(
        s,
        ClusterSettings {
            auto_rebalance: false,
            max_bandwidth_mb: None,
            yield_bandwidth_mb: Some(50.0),
            max_concurrent_moves: 2,
            max_moves_per_node: 1,
            write_fence_timeout_ms: 5000,
            task_retries: 10,
            retry_backoff_ms: 5000,
            scrub_rate_mb: 4,
            retain_deleted_ms: 0,
        }
    );
}

#[test]
fn stored_values_are_typed_and_a_bad_one_is_refused() {
    let mut values = defaults();
    for (n, v) in values.iter_mut() {
        match *n {
            "auto_rebalance" => *v = "yes",
            "rebalance.max_bandwidth_mb" => *v = "12.5",
            "rebalance.yield_bandwidth_mb" => *v = "unlimited",
            _ => {}
        }
    }
    let s = ClusterSettings::parse(values.clone()).unwrap();
    assert!(s.auto_rebalance);
    assert_eq!(s.max_bandwidth_mb, Some(12.5));
    assert_eq!(s.yield_bandwidth_mb, None);

    // A fence timeout of 0 would fence nothing: refused where it is read, not defaulted.
    for (n, v) in values.iter_mut() {
        if *n == "rebalance.write_fence_timeout_ms" {
            *v = "0";
        }
    }
    let err = ClusterSettings::parse(values).unwrap_err().to_string();
    assert!(
        err.contains("rebalance.write_fence_timeout_ms") && err.contains("\"0\""),
        "{err}"
    );
    let missing: Vec<_> = defaults()
        .into_iter()
        .filter(|(n, _)| *n != "scrub.rate_mb")
        .collect();
    assert!(ClusterSettings::parse(missing).is_err());
}
