//! pg_catalog functions that drivers and tools call while they introspect, answered from what
//! Shoal is: `pg_typeof`, `obj_description` and the other comment functions (NULL: Shoal keeps no
//! comments), `pg_get_function_result` / `_arguments` (NULL: Shoal defines no functions), `length` (of bytea too), `to_regtype` (PostgreSQL's built-in types; Shoal has no others), `pg_size_pretty`
//! (PostgreSQL's units and rounding), and `pg_type_is_visible` / `pg_function_is_visible` (every type and function
//! Shoal has lives in `pg_catalog`, which is always on the search path).

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_int64_array;
use datafusion::logical_expr::{
    create_udf, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;

/// PostgreSQL 15's built-in types by name (and the spellings `to_regtype` also reads),
/// with their fixed OIDs.
const BUILTIN_TYPES: &[(&str, i32)] = &[
    ("bool", 16),
    ("boolean", 16),
    ("bytea", 17),
    ("char", 18),
    ("name", 19),
    ("int8", 20),
    ("bigint", 20),
    ("int2", 21),
    ("smallint", 21),
    ("int4", 23),
    ("int", 23),
    ("integer", 23),
    ("regproc", 24),
    ("text", 25),
    ("oid", 26),
    ("json", 114),
    ("xml", 142),
    ("float4", 700),
    ("real", 700),
    ("float8", 701),
    ("double precision", 701),
    ("money", 790),
    ("inet", 869),
    ("cidr", 650),
    ("bpchar", 1042),
    ("character", 1042),
    ("varchar", 1043),
    ("character varying", 1043),
    ("date", 1082),
    ("time", 1083),
    ("time without time zone", 1083),
    ("timestamp", 1114),
    ("timestamp without time zone", 1114),
    ("timestamptz", 1184),
    ("timestamp with time zone", 1184),
    ("interval", 1186),
    ("timetz", 1266),
    ("time with time zone", 1266),
    ("bit", 1560),
    ("varbit", 1562),
    ("numeric", 1700),
    ("decimal", 1700),
    ("regclass", 2205),
    ("regtype", 2206),
    ("record", 2249),
    ("void", 2278),
    ("uuid", 2950),
    ("jsonb", 3802),
    ("json", 114),
    ("unknown", 705),
    ("_bool", 1000),
    ("_bytea", 1001),
    ("_int2", 1005),
    ("_int4", 1007),
    ("_text", 1009),
    ("_varchar", 1015),
    ("_int8", 1016),
    ("_float4", 1021),
    ("_float8", 1022),
    ("_timestamp", 1115),
    ("_date", 1182),
    ("_timestamptz", 1185),
    ("_numeric", 1231),
    ("_uuid", 2951),
    ("_json", 199),
    ("_jsonb", 3807),
];

/// The OID `to_regtype(name)` answers: `int4`, `integer`, `pg_catalog.int4`, `int4[]`.
fn regtype(name: &str) -> Option<i32> {
    let mut n = name.trim().to_ascii_lowercase();
    if let Some(rest) = n.strip_prefix("pg_catalog.") {
        n = rest.to_string();
    }
    n = n.trim_matches('"').to_string();
    let (base, array) = match n.strip_suffix("[]") {
        Some(b) => (b.trim().to_string(), true),
        None => (n, false),
    };
    let base_oid = BUILTIN_TYPES.iter().find(|(t, _)| *t == base)?.1;
    if !array {
        return Some(base_oid);
    }
    let canonical = BUILTIN_TYPES
        .iter()
        .find(|(t, oid)| *oid == base_oid && !t.contains(' ') && !t.starts_with('_'))?
        .0;
    BUILTIN_TYPES
        .iter()
        .find(|(t, _)| t.strip_prefix('_') == Some(canonical))
        .map(|(_, oid)| *oid)
}

/// `pg_size_pretty(bigint)` with PostgreSQL 15's units and half-rounding.
pub fn size_pretty(bytes: i64) -> String {
    const UNITS: [(&str, i64, bool, u32); 6] = [
        ("bytes", 10 * 1024, false, 0),
        ("kB", 20 * 1024 - 1, true, 10),
        ("MB", 20 * 1024 - 1, true, 20),
        ("GB", 20 * 1024 - 1, true, 30),
        ("TB", 20 * 1024 - 1, true, 40),
        ("PB", 20 * 1024 - 1, true, 50),
    ];
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    let mut size = bytes;
    for (i, (name, limit, round, bits)) in UNITS.iter().enumerate() {
        let last = i + 1 == UNITS.len();
        if last || size.unsigned_abs() < *limit as u64 {
            let shown = if *round { half_rounded(size) } else { size };
            return format!("{shown} {name}");
        }
        let (_, _, next_round, next_bits) = UNITS[i + 1];
        let shift = next_bits - bits - u32::from(next_round) + u32::from(*round);
        size /= 1i64 << shift;
    }
    format!("{bytes} bytes")
}

pub fn register(ctx: &SessionContext) {
    for udf in udfs() {
        ctx.register_udf(udf);
    }
}

fn udfs() -> Vec<ScalarUDF> {
    let to_regtype = create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = datafusion::common::cast::as_string_array(&arrays[0])?;
            let out: Int32Array = names.iter().map(|n| n.and_then(regtype)).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    );
    let size_pretty_udf = create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let sizes: &Int64Array = as_int64_array(&arrays[0])?;
            let out: StringArray = sizes.iter().map(|s| s.map(size_pretty)).collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    );
    let visible = |name: &str| {
        create_udf(
            name,
            vec![DataType::Int32],
            DataType::Boolean,
            Volatility::Stable,
            Arc::new(|args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let oids = &arrays[0];
                let out: BooleanArray = (0..oids.len())
                    .map(|i| (!oids.is_null(i)).then_some(true))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
            }),
        )
    };
    // length(bytea) counts bytes, as octet_length does; DataFusion's length() reads its
    // argument as text (so a bytea that is not UTF-8 failed).
    let text_or_bytes = [
        DataType::Utf8,
        DataType::LargeUtf8,
        DataType::Utf8View,
        DataType::Binary,
        DataType::LargeBinary,
        DataType::BinaryView,
    ];
    let length = ScalarUDF::new_from_impl(Length {
        signature: Signature::one_of(
            text_or_bytes
                .iter()
                .map(|t| TypeSignature::Exact(vec![t.clone()]))
                .collect(),
            Volatility::Immutable,
        ),
    });
    let no_comment = |name: &'static str, arities: &[usize]| {
        ScalarUDF::new_from_impl(NoComment {
            name,
            signature: Signature::one_of(
                arities.iter().map(|n| TypeSignature::Any(*n)).collect(),
                Volatility::Stable,
            ),
        })
    };
    vec![
        length,
        to_regtype,
        size_pretty_udf,
        visible("pg_type_is_visible"),
        visible("pg_function_is_visible"),
        ScalarUDF::new_from_impl(PgTypeof {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        no_comment("obj_description", &[1, 2]),
        no_comment("col_description", &[2]),
        no_comment("shobj_description", &[2]),
        // A function's signature as text (psql's \df): Shoal defines no functions of its
        // own, so none is listed there; a built-in's answers NULL, as an unknown oid does.
        no_comment("pg_get_function_result", &[1]),
        no_comment("pg_get_function_arguments", &[1]),
        no_comment("pg_get_function_identity_arguments", &[1]),
        // Shoal has no triggers, so no oid names one (pg_dump asks for each table's).
        no_comment("pg_get_triggerdef", &[1, 2]),
        ScalarUDF::new_from_impl(AclDefault {
            signature: Signature::any(2, Volatility::Stable),
        }),
        create_udf(
            "quote_literal",
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let text = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
                let text = datafusion::common::cast::as_string_array(&text)?;
                let out: StringArray = text.iter().map(|v| v.map(quote_literal)).collect();
                Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
            }),
        ),
        // A Shoal coordinator is never a standby in recovery.
        create_udf(
            "pg_is_in_recovery",
            vec![],
            DataType::Boolean,
            Volatility::Stable,
            Arc::new(|_: &[ColumnarValue]| {
                Ok(ColumnarValue::Scalar(
                    datafusion::common::ScalarValue::Boolean(Some(false)),
                ))
            }),
        ),
    ]
}

/// `quote_literal(text)` as PostgreSQL writes it: in single quotes, doubled inside, and as
/// an `E'...'` string with doubled backslashes when it holds a backslash.
fn quote_literal(s: &str) -> String {
    let quoted = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// `acldefault(objtype, owner)`: the privileges PostgreSQL 15 gives an object of this kind
/// when its ACL is NULL (every object of Shoal's), as aclitem text (`shoal=arwdDxt/shoal`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct AclDefault {
    signature: Signature,
}

/// The default ACL of an object of `kind` owned by `owner`.
fn default_acl(kind: &str, owner: &str) -> Option<Vec<String>> {
    let (public, owners) = match kind {
        "c" => return Some(Vec::new()),
        "r" => (None, "arwdDxt"),
        "s" => (None, "rwU"),
        "d" => (Some("Tc"), "CTc"),
        "f" => (Some("X"), "X"),
        "l" => (Some("U"), "U"),
        "L" => (None, "rw"),
        "n" => (None, "UC"),
        "t" => (None, "C"),
        "F" | "S" => (None, "U"),
        "T" => (Some("U"), "U"),
        "p" => return Some(Vec::new()),
        _ => return None,
    };
    let mut acl = Vec::new();
    if let Some(p) = public {
        acl.push(format!("={p}/{owner}"));
    }
    acl.push(format!("{owner}={owners}/{owner}"));
    Some(acl)
}

impl ScalarUDFImpl for AclDefault {
    fn name(&self) -> &str {
        "acldefault"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::List(Arc::new(
            arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
        )))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        use arrow::array::{AsArray, ListBuilder, StringBuilder};
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let kinds = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let kinds = kinds.as_string::<i32>();
        let owners = arrow::compute::cast(&arrays[1], &DataType::Int64)?;
        let owners = owners.as_primitive::<arrow::datatypes::Int64Type>();
        let mut out = ListBuilder::new(StringBuilder::new());
        for i in 0..rows {
            if kinds.is_null(i) || owners.is_null(i) {
                out.append_null();
                continue;
            }
            // Roles are shown by name (an unknown one by its oid, as aclitem prints it).
            let owner = super::pg_catalog_context::role_name(owners.value(i))
                .unwrap_or_else(|| owners.value(i).to_string());
            match default_acl(kinds.value(i), &owner) {
                Some(items) => {
                    for item in items {
                        out.values().append_value(item);
                    }
                    out.append(true);
                }
                None => {
                    return Err(datafusion::error::DataFusionError::Execution(format!(
                        "unrecognized object type abbreviation: {}",
                        kinds.value(i)
                    )))
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `pg_typeof(value)`: the PostgreSQL name of the value's type, as `regtype` prints it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

/// A type's name as PostgreSQL's `format_type` prints it.
fn pg_type_name(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "numeric".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("{}[]", pg_type_name(f.data_type()))
        }
        DataType::Null => "unknown".into(),
        _ => "record".into(),
    }
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        // uuid, json and jsonb are text marked with their PostgreSQL type (see pg_json).
        let marked = args.arg_fields.first().and_then(|f| {
            f.metadata()
                .get(arrow_pg::datatypes::PG_TEXT_TYPE_KEY)
                .cloned()
        });
        // A regtype reads as format_type's name: `character` for bpchar.
        let name = match marked.as_deref() {
            Some("bpchar") => "character".to_string(),
            Some(other) => other.to_string(),
            None => pg_type_name(&args.args[0].data_type()),
        };
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Utf8(Some(name)),
        ))
    }
}

/// `obj_description`, `col_description`, `shobj_description`: NULL, the truth, since Shoal
/// keeps no comments (`COMMENT ON` is refused with 0A000).
#[derive(Debug, PartialEq, Eq, Hash)]
struct NoComment {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for NoComment {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        Ok(ColumnarValue::Array(
            Arc::new(StringArray::new_null(args.number_rows)) as ArrayRef,
        ))
    }
}

/// `length(text)` in characters, `length(bytea)` in bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Length {
    signature: Signature,
}

impl ScalarUDFImpl for Length {
    fn name(&self) -> &str {
        "length"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a = &arrays[0];
        let len = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let out: Int32Array = match a.data_type() {
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                let bytes = arrow::compute::cast(a, &DataType::LargeBinary)?;
                bytes
                    .as_binary::<i64>()
                    .iter()
                    .map(|v| v.map(|b| len(b.len())))
                    .collect()
            }
            _ => {
                let text = arrow::compute::cast(a, &DataType::LargeUtf8)?;
                text.as_string::<i64>()
                    .iter()
                    .map(|v| v.map(|s| len(s.chars().count())))
                    .collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

#[cfg(test)]
mod tests;
