use super::*;

#[test]
fn user_errors_get_real_sqlstates() {
    let e = DataFusionError::Plan("table 'shoal.public.nope' not found".into());
    let p = from_datafusion(&e);
    assert_eq!(p.code, "42P01");
    assert_eq!(p.message, "relation \"nope\" does not exist");
    let e = DataFusionError::External(Box::new(ClusterError::NotSupported {
        message: "x".into(),
    }));
    assert_eq!(from_datafusion(&e).code, "0A000");
    let e = DataFusionError::Context(
        "ctx".into(),
        Box::new(DataFusionError::External(Box::new(ClusterError::Worker(
            ShardStoreError::Unavailable {
                addr: "h:1".into(),
                message: "refused".into(),
            },
        )))),
    );
    assert_eq!(from_datafusion(&e).code, "08006");
    assert_eq!(
        from_datafusion(&DataFusionError::NotImplemented("x".into())).code,
        "0A000"
    );
}
