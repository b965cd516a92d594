//! Which shard a row belongs to: a stable 32-bit hash of the distribution column, and the
//! hash ranges of a table's shards.
//!
//! The hash is part of the on-disk format (rows already stored were placed with it), so it is
//! written out here rather than borrowed from a library whose output may change between
//! versions or CPUs.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::ScalarValue;

use crate::error::{ClusterError, Result};

fn mix64(mut z: u64) -> u64 {
    // splitmix64 finaliser
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fold(h: u64) -> i32 {
    (h >> 32) as u32 as i32
}

fn hash_bytes(b: &[u8]) -> i32 {
    // FNV-1a, then mixed
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b {
        h ^= *byte as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    fold(mix64(h))
}

fn hash_i64(v: i64) -> i32 {
    fold(mix64(v as u64))
}

/// Hashes every value of a distribution column. NULL is refused: a row without a
/// distribution value has no shard.
pub fn hash_column(column: &ArrayRef, column_name: &str) -> Result<Vec<i32>> {
    if column.null_count() > 0 {
        return Err(ClusterError::NotNull {
            message: format!(
                "cannot perform an INSERT with NULL in the distribution column \"{column_name}\""
            ),
        });
    }
    let n = column.len();
    let out: Vec<i32> = match column.data_type() {
        DataType::Int16 => column
            .as_primitive::<Int16Type>()
            .values()
            .iter()
            .map(|v| hash_i64(*v as i64))
            .collect(),
        DataType::Int32 => column
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .map(|v| hash_i64(*v as i64))
            .collect(),
        DataType::Int64 => column
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|v| hash_i64(*v))
            .collect(),
        DataType::Date32 => column
            .as_primitive::<Date32Type>()
            .values()
            .iter()
            .map(|v| hash_i64(*v as i64))
            .collect(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => column
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .iter()
            .map(|v| hash_i64(*v))
            .collect(),
        DataType::Float32 => column
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|v| hash_i64((*v as f64).to_bits() as i64))
            .collect(),
        DataType::Float64 => column
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|v| hash_i64(v.to_bits() as i64))
            .collect(),
        DataType::Decimal128(_, _) => column
            .as_primitive::<Decimal128Type>()
            .values()
            .iter()
            .map(|v| fold(mix64((*v as u128 as u64) ^ mix64((*v >> 64) as u64))))
            .collect(),
        DataType::Boolean => {
            let a = column.as_boolean();
            (0..n).map(|i| hash_i64(a.value(i) as i64)).collect()
        }
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|v| hash_bytes(v.unwrap_or_default().as_bytes()))
            .collect(),
        DataType::Binary => column
            .as_binary::<i32>()
            .iter()
            .map(|v| hash_bytes(v.unwrap_or_default()))
            .collect(),
        other => {
            return Err(ClusterError::NotSupported {
                message: format!("cannot distribute on a column of type {other}"),
            })
        }
    };
    Ok(out)
}

/// The hash of one value, first cast to the column's type (so `id = 5` hashes like the stored
/// bigint 5).
pub fn hash_scalar(value: &ScalarValue, column_type: &DataType, column_name: &str) -> Result<i32> {
    let v = value
        .cast_to(column_type)
        .map_err(|e| ClusterError::InvalidArgument {
            message: format!(
                "cannot use {value} as a value of column \"{column_name}\" ({column_type}): {e}"
            ),
            hint: None,
        })?;
    let arr = v.to_array()?;
    Ok(hash_column(&arr, column_name)?[0])
}

/// The hash range of shard `i` of `n`: [INT32_MIN + i*(2^32/n), next-1], the last one ending
/// at INT32_MAX.
pub fn shard_range(i: usize, n: usize) -> (i32, i32) {
    let width = (1u64 << 32) / n as u64;
    let min = i32::MIN as i64 + (i as i64) * width as i64;
    let max = if i + 1 == n {
        i32::MAX as i64
    } else {
        min + width as i64 - 1
    };
    (min as i32, max as i32)
}

/// A table's shards by the hash ranges the catalog holds for them: the one way a value's
/// shard is found, for writes (rows routed to shards), reads (shards pruned by a filter) and
/// `get_shard_id_for_distribution_column`. [`shard_range`] only makes a new table's layout.
#[derive(Clone, Debug)]
pub struct ShardRanges {
    /// `(hash_min, hash_max, position)`, sorted by `hash_min`; `position` is the shard's
    /// place in the list the ranges were given in.
    sorted: Vec<(i32, i32, usize)>,
}

impl ShardRanges {
    /// The ranges of a table's shards, in the caller's order (the positions
    /// [`Self::shard_of`] returns).
    pub fn new(ranges: impl IntoIterator<Item = (i32, i32)>) -> ShardRanges {
        let mut sorted: Vec<(i32, i32, usize)> = ranges
            .into_iter()
            .enumerate()
            .map(|(i, (min, max))| (min, max, i))
            .collect();
        sorted.sort_unstable();
        ShardRanges { sorted }
    }

    /// The position of the shard whose range holds `hash`; `None` if none does (a catalog
    /// whose ranges leave a gap).
    pub fn shard_of(&self, hash: i32) -> Option<usize> {
        let after = self.sorted.partition_point(|(min, _, _)| *min <= hash);
        let (_, max, position) = *self.sorted.get(after.checked_sub(1)?)?;
        (hash <= max).then_some(position)
    }
}

#[cfg(test)]
mod tests;
