use super::*;
use arrow::datatypes::TimeUnit;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::{col, lit};
use datafusion::scalar::ScalarValue;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("s", DataType::Utf8, true),
        Field::new("d", DataType::Decimal128(12, 3), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "tz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

#[test]
fn scan_ticket_round_trip() {
    let req = ScanRequest {
        table_id: 42,
        shards: vec![
            ShardFiles {
                shard_id: -7,
                files: vec!["x.parquet".into(), "y.parquet".into()],
                checks: Default::default(),
            },
            ShardFiles {
                shard_id: 9,
                files: vec!["z.parquet".into()],
                checks: Default::default(),
            },
        ],
        table_schema: schema(),
        filters: vec![
            col("a").gt(lit(5)).and(col("s").like(lit("x%"))),
            col("tz").lt(lit(ScalarValue::TimestampMicrosecond(
                Some(1_700_000_000_000_000),
                Some("UTC".into()),
            ))),
        ],
        projection: Some(vec!["s".into(), "a".into()]),
        aggregate: None,
        limit: Some(10),
    };
    let ticket = req.to_ticket().unwrap();
    let back = ScanRequest::from_ticket(&ticket).unwrap();
    assert_eq!(back, req);
    assert_eq!(
        back.table_schema.field(4).data_type(),
        schema().field(4).data_type()
    );
}

#[test]
fn scan_ticket_round_trip_with_aggregate() {
    let req = ScanRequest {
        table_id: 1,
        shards: vec![ShardFiles {
            shard_id: 2,
            files: vec![],
            checks: Default::default(),
        }],
        table_schema: schema(),
        filters: vec![],
        projection: None,
        aggregate: Some(PartialAggregate {
            group_by: vec![col("s")],
            aggr: vec![count(lit(1)).alias("n"), sum(col("d"))],
        }),
        limit: None,
    };
    let back = ScanRequest::from_ticket(&req.to_ticket().unwrap()).unwrap();
    assert_eq!(back, req);
}

#[test]
fn bad_tickets_are_protocol_errors() {
    let bad = |bytes: Vec<u8>| ScanRequest::from_ticket(&Ticket::new(bytes)).unwrap_err();
    assert!(matches!(
        bad(b"nope".to_vec()),
        ShardStoreError::Protocol { .. }
    ));
    let mut truncated = TICKET_MAGIC.to_vec();
    truncated.extend_from_slice(&100u32.to_le_bytes());
    truncated.extend_from_slice(b"{}");
    assert!(matches!(bad(truncated), ShardStoreError::Protocol { .. }));
    let req = ScanRequest {
        table_id: 1,
        shards: vec![ShardFiles {
            shard_id: 2,
            files: vec![],
            checks: Default::default(),
        }],
        table_schema: schema(),
        filters: vec![],
        projection: None,
        aggregate: None,
        limit: None,
    };
    let mut trailing = req.to_ticket().unwrap().ticket.to_vec();
    trailing.push(0);
    assert!(matches!(bad(trailing), ShardStoreError::Protocol { .. }));
}

#[test]
fn view_types_are_normalised() {
    let s = Schema::new(vec![
        Field::new("a", DataType::Utf8View, true),
        Field::new("b", DataType::BinaryView, true),
        Field::new(
            "c",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true))),
            true,
        ),
    ]);
    let n = without_view_types(&s);
    assert_eq!(n.field(0).data_type(), &DataType::Utf8);
    assert_eq!(n.field(1).data_type(), &DataType::Binary);
    assert_eq!(
        n.field(2).data_type(),
        &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
    );
}
