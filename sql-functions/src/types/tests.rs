use shoal_catalog::{ArrayElement, ColumnDef, SqlType};

use super::*;

/// Every column type Shoal stores, one column each.
fn every_type() -> Vec<ColumnDef> {
    let types = [
        SqlType::SmallInt,
        SqlType::Integer,
        SqlType::BigInt,
        SqlType::Real,
        SqlType::Double,
        SqlType::Numeric {
            precision: 12,
            scale: 2,
        },
        SqlType::Text,
        SqlType::Varchar { max_len: Some(5) },
        SqlType::Char { len: 3 },
        SqlType::Boolean,
        SqlType::Date,
        SqlType::Timestamp,
        SqlType::TimestampTz,
        SqlType::Bytea,
        SqlType::Uuid,
        SqlType::Json,
        SqlType::Jsonb,
        SqlType::Array {
            element: ArrayElement::BigInt,
        },
        SqlType::Array {
            element: ArrayElement::Text,
        },
    ];
    types
        .into_iter()
        .enumerate()
        .map(|(i, t)| ColumnDef::new(format!("c{i}"), t, false))
        .collect()
}

/// The Parquet schema of a shard file holding every column type, as the worker's writer
/// makes it from the stored Arrow schema. Shard files outlive the binary that wrote them:
/// a change here changes what older files are read as, so it must come with a reader for
/// the old form (and this golden text updated on purpose).
#[test]
fn the_parquet_schema_of_every_column_type_is_pinned() {
    let schema = stored_schema(&every_type());
    let parquet = parquet::arrow::ArrowSchemaConverter::new()
        .convert(&schema)
        .unwrap();
    let mut printed = Vec::new();
    parquet::schema::printer::print_schema(&mut printed, parquet.root_schema());
    let printed = String::from_utf8(printed).unwrap();
    assert_eq!(printed, GOLDEN, "\n{printed}");
}

const GOLDEN: &str = "\
message arrow_schema {
  OPTIONAL INT32 c0 (INTEGER(16,true));
  OPTIONAL INT32 c1;
  OPTIONAL INT64 c2;
  OPTIONAL FLOAT c3;
  OPTIONAL DOUBLE c4;
  OPTIONAL INT64 c5 (DECIMAL(12,2));
  OPTIONAL BYTE_ARRAY c6 (STRING);
  OPTIONAL BYTE_ARRAY c7 (STRING);
  OPTIONAL BYTE_ARRAY c8 (STRING);
  OPTIONAL BOOLEAN c9;
  OPTIONAL INT32 c10 (DATE);
  OPTIONAL INT64 c11 (TIMESTAMP(MICROS,false));
  OPTIONAL INT64 c12 (TIMESTAMP(MICROS,true));
  OPTIONAL BYTE_ARRAY c13;
  OPTIONAL BYTE_ARRAY c14 (STRING);
  OPTIONAL BYTE_ARRAY c15 (STRING);
  OPTIONAL BYTE_ARRAY c16 (STRING);
  OPTIONAL group c17 (LIST) {
    REPEATED group list {
      OPTIONAL INT64 item;
    }
  }
  OPTIONAL group c18 (LIST) {
    REPEATED group list {
      OPTIONAL BYTE_ARRAY item (STRING);
    }
  }
}
";
