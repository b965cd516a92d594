use super::*;
use arrow::array::{AsArray, Decimal128Array};
use arrow::datatypes::{Field, Schema};

fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(ndigits);
    b.put_i16(weight);
    b.put_u16(sign);
    b.put_u16(dscale);
    for d in digits {
        b.put_i16(*d);
    }
    b.to_vec()
}

#[test]
fn numeric_values_round_to_the_column_scale() {
    // 12345.6789 = [1, 2345, 6789], weight 1
    let v = numeric_bytes(3, 1, 0, 4, &[1, 2345, 6789]);
    assert_eq!(numeric(&v, 10, 2), Ok(1_234_568));
    assert_eq!(numeric(&v, 10, 4), Ok(123_456_789));
    assert_eq!(numeric(&v, 12, 6), Ok(12_345_678_900));
    let neg = numeric_bytes(3, 1, 0x4000, 4, &[1, 2345, 6789]);
    assert_eq!(numeric(&neg, 10, 0), Ok(-12_346));
    // 0.0005 = [5], weight -1: rounds half away from zero at scale 3
    let small = numeric_bytes(1, -1, 0, 4, &[5]);
    assert_eq!(numeric(&small, 5, 3), Ok(1));
    // 1e8 = [1], weight 2
    let big = numeric_bytes(1, 2, 0, 0, &[1]);
    assert_eq!(numeric(&big, 10, 0), Ok(100_000_000));
    assert!(matches!(
        numeric(&big, 8, 0),
        Err((BadValue::OutOfRange, _))
    ));
    let zero = numeric_bytes(0, 0, 0, 0, &[]);
    assert_eq!(numeric(&zero, 5, 2), Ok(0));
    let nan = numeric_bytes(0, 0, 0xC000, 0, &[]);
    assert!(matches!(
        numeric(&nan, 5, 2),
        Err((BadValue::OutOfRange, _))
    ));
    assert!(matches!(
        numeric(&v[..5], 5, 2),
        Err((BadValue::BinaryFormat, _))
    ));
}

fn input(rows: &[Vec<Option<Vec<u8>>>], trailer: bool) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_slice(&header());
    for r in rows {
        b.put_i16(r.len() as i16);
        for f in r {
            match f {
                None => b.put_i32(-1),
                Some(v) => {
                    b.put_i32(v.len() as i32);
                    b.put_slice(v);
                }
            }
        }
    }
    if trailer {
        b.put_i16(-1);
    }
    b.to_vec()
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
    ]))
}

fn decode_all(bytes: &[u8], cut: usize) -> Result<Vec<RecordBatch>, ClusterError> {
    let mut d = BinaryDecoder::new(schema(), 2, "t")?;
    let mut out = Vec::new();
    for chunk in [&bytes[..cut], &bytes[cut..]] {
        d.push(chunk)?;
        while let Some(b) = d.decode()? {
            out.push(b);
        }
    }
    while let Some(b) = d.finish()? {
        out.push(b);
    }
    Ok(out)
}

#[test]
fn rows_decode_across_any_chunk_boundary() {
    let price = numeric_bytes(2, 0, 0, 2, &[12, 5000]);
    let rows: Vec<Vec<Option<Vec<u8>>>> = (0..5i64)
        .map(|i| {
            vec![
                Some(i.to_be_bytes().to_vec()),
                (i != 3).then(|| format!("n{i}").into_bytes()),
                Some(price.clone()),
            ]
        })
        .collect();
    let bytes = input(&rows, true);
    for cut in 0..=bytes.len() {
        let batches = decode_all(&bytes, cut).unwrap();
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4], "cut at {cut}");
        let names: Vec<Option<String>> = batches
            .iter()
            .flat_map(|b| {
                b.column(1)
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(names[3], None);
        assert_eq!(names[4].as_deref(), Some("n4"));
        let p = batches[0]
            .column(2)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        assert_eq!(p.value(0), 1250);
    }
}

#[test]
fn bad_input_fails_with_its_line() {
    let ok = vec![Some(1i64.to_be_bytes().to_vec()), None, None];
    let short = vec![Some(vec![0, 1]), None, None];
    let err = decode_all(&input(&[ok.clone(), short], true), 0).unwrap_err();
    assert!(
        matches!(&err, ClusterError::BadCopyValue { kind: BadValue::InsufficientData, message } if message.contains("line 2, column id")),
        "{err}"
    );
    let two = vec![None, None];
    let err = decode_all(&input(&[two], true), 0).unwrap_err();
    assert!(
        err.to_string().contains("row field count is 2, expected 3"),
        "{err}"
    );
    let bytes = input(std::slice::from_ref(&ok), true);
    let err = decode_all(&bytes[..bytes.len() - 4], 0).unwrap_err();
    assert!(err.to_string().contains("unexpected EOF"), "{err}");
    assert!(decode_all(b"PGCOPX\n\xff\r\n\0\0\0\0\0\0\0\0\0", 0).is_err());
    // No trailer: the rows up to the end count, as in PostgreSQL.
    assert_eq!(
        decode_all(&input(std::slice::from_ref(&ok), false), 0).unwrap()[0].num_rows(),
        1
    );
    let mut after = input(&[ok], true);
    after.extend_from_slice(&[0, 3]);
    assert!(decode_all(&after, 0)
        .unwrap_err()
        .to_string()
        .contains("after EOF marker"));
    let bad_utf8 = vec![None, Some(vec![0xff, 0xfe]), None];
    let err = decode_all(&input(&[bad_utf8], true), 0).unwrap_err();
    assert!(matches!(
        err,
        ClusterError::BadCopyValue {
            kind: BadValue::Encoding,
            ..
        }
    ));
}
