//! Module implementing Feast's online store format in Redis, read directly (Feast
//! documents it as part of its public API, the "Online Store Format Spec"). See
//! [`entity_key`], [`hash_fields`] and [`decode_row`] for details.
//!
//! - The hash key is the entity key, serialized as Feast's version 3 does (the
//!   default since Feast 0.4x): the number of join keys (u32 little-endian); per key
//!   its value type (`STRING`, 2), length and UTF-8 name; per value its type, length
//!   and bytes; then the project name.
//! - Each feature's field is the murmur3 32-bit hash (seed 0), little-endian, of
//!   `<feature view>:<feature>`; the view's event time is the field `_ts:<view>`.
//! - Values are serialized `feast.types.Value` protobufs, event times serialized
//!   `google.protobuf.Timestamp`s. Both are read by the small protobuf reader below
//!   (numbers only: double, float, int32, int64, bool, Unix timestamps; a null or an
//!   unset value is missing).
//!
//! Entity ids are strings (Feast's `String` join keys), as the request sends them.

use super::GroupValues;

/// A card group read from a Feast feature view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeastGroup {
    /// The feature view.
    pub feature_view: String,
    /// The entity's join key.
    pub join_key: String,
}

/// Feast's `ValueType.STRING`.
const STRING: u32 = 2;

/// The Redis key of one entity: Feast's version 3 serialization of a single string
/// join key, then the project.
pub fn entity_key(join_key: &str, entity: &str, project: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(20 + join_key.len() + entity.len() + project.len());
    key.extend_from_slice(&1u32.to_le_bytes());
    key.extend_from_slice(&STRING.to_le_bytes());
    key.extend_from_slice(&(join_key.len() as u32).to_le_bytes());
    key.extend_from_slice(join_key.as_bytes());
    key.extend_from_slice(&STRING.to_le_bytes());
    key.extend_from_slice(&(entity.len() as u32).to_le_bytes());
    key.extend_from_slice(entity.as_bytes());
    key.extend_from_slice(project.as_bytes());
    key
}

/// The `HMGET` fields of one group: `_ts:<view>` first, then each feature's hash.
pub fn hash_fields(feature_view: &str, features: &[String]) -> Vec<Vec<u8>> {
    std::iter::once(format!("_ts:{feature_view}").into_bytes())
        .chain(features.iter().map(|f| {
            murmur3_32(format!("{feature_view}:{f}").as_bytes(), 0)
                .to_le_bytes()
                .to_vec()
        }))
        .collect()
}

/// MurmurHash3, x86 32-bit.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, b) in tail.iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Decodes one `HMGET` answer (in [`hash_fields`] order): `None` when the view has
/// no event time for the entity (Feast never wrote it).
///
/// # Errors
/// A value or timestamp that is not the protobuf Feast writes, or not a number.
pub fn decode_row(raw: &[Option<Vec<u8>>]) -> Result<Option<GroupValues>, String> {
    let Some((Some(ts), values)) = raw.split_first() else {
        return Ok(None);
    };
    let event_time = timestamp_seconds(ts)?;
    let values = values
        .iter()
        .map(|v| match v {
            None => Ok(f32::NAN),
            Some(bytes) => value_number(bytes),
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(GroupValues { values, event_time }))
}

/// A protobuf reader of the few shapes Feast's values take.
struct Reader<'a> {
    bytes: &'a [u8],
}

enum Field {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    /// Length-delimited (strings, bytes, lists, null): never a number here.
    Bytes,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&b, rest) = self
                .bytes
                .split_first()
                .ok_or("truncated protobuf varint")?;
            self.bytes = rest;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("protobuf varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("truncated protobuf field".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Field)>, String> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let field = match tag & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(self.take(8)?.try_into().map_err(|_| "fixed64")?),
            2 => {
                let n = self.varint()? as usize;
                self.take(n)?;
                Field::Bytes
            }
            5 => Field::Fixed32(self.take(4)?.try_into().map_err(|_| "fixed32")?),
            w => return Err(format!("unsupported protobuf wire type {w}")),
        };
        Ok(Some((tag >> 3, field)))
    }
}

/// `google.protobuf.Timestamp`'s seconds.
fn timestamp_seconds(bytes: &[u8]) -> Result<i64, String> {
    let mut reader = Reader { bytes };
    let mut seconds = 0i64;
    while let Some((number, field)) = reader.next()? {
        if let (1, Field::Varint(v)) = (number, field) {
            seconds = v as i64;
        }
    }
    Ok(seconds)
}

/// A `feast.types.Value` as a number: NaN for null or unset.
fn value_number(bytes: &[u8]) -> Result<f32, String> {
    let mut reader = Reader { bytes };
    let mut value = f32::NAN;
    while let Some((number, field)) = reader.next()? {
        value = match (number, field) {
            // double_val, float_val
            (5, Field::Fixed64(b)) => f64::from_le_bytes(b) as f32,
            (6, Field::Fixed32(b)) => f32::from_le_bytes(b),
            // int32_val (sign-extended to 64 bits on the wire), int64_val,
            // unix_timestamp_val
            (3 | 4 | 8, Field::Varint(v)) => v as i64 as f32,
            (7, Field::Varint(v)) => f32::from(u8::from(v != 0)),
            // null_val
            (19, _) => f32::NAN,
            (n @ (1 | 2), _) => {
                return Err(format!(
                    "a {} value is not a number",
                    if n == 1 { "bytes" } else { "string" }
                ));
            }
            (n, _) => return Err(format!("value field {n} is not a number")),
        };
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Expected bytes printed by Feast 0.67's own helpers (`_redis_key`, `_mmh3`,
    // `Value.SerializeToString`).
    #[test]
    fn keys_and_fields_are_feasts() {
        assert_eq!(
            entity_key("customer_id", "C000001", "fraud"),
            hex(
                "01000000020000000b000000637573746f6d65725f69640200000007000000433030303030316672617564"
            )
        );
        assert_eq!(
            murmur3_32(b"customer_features:customer_nb_tx_1d", 0),
            4_033_538_070
        );
        let fields = hash_fields("customer_features", &["customer_nb_tx_1d".into()]);
        assert_eq!(fields[0], b"_ts:customer_features");
        assert_eq!(fields[1], hex("16e86af0"));
        // Reference vectors of MurmurHash3_x86_32.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"abc", 0), 0xb3dd_93fa);
    }

    #[test]
    fn values_and_timestamps_decode() {
        assert_eq!(value_number(&hex("29000000000000d03f")).unwrap(), 0.25);
        assert_eq!(value_number(&hex("350000c03f")).unwrap(), 1.5);
        assert_eq!(value_number(&hex("20fdffffffffffffffff01")).unwrap(), -3.0);
        assert_eq!(value_number(&hex("3801")).unwrap(), 1.0);
        assert_eq!(value_number(&hex("1807")).unwrap(), 7.0);
        assert!(value_number(&[]).unwrap().is_nan());
        assert!(value_number(b"\x12\x01a").is_err());
        assert!(value_number(&hex("29000000")).is_err());
        assert_eq!(
            timestamp_seconds(&hex("0880f2d6ca061005")).unwrap(),
            1_767_225_600
        );
        let row = decode_row(&[Some(hex("0880f2d6ca061005")), Some(hex("3801")), None])
            .unwrap()
            .unwrap();
        assert_eq!(row.event_time, 1_767_225_600);
        assert_eq!(row.values[0], 1.0);
        assert!(row.values[1].is_nan());
        assert_eq!(decode_row(&[None, Some(hex("3801"))]).unwrap(), None);
    }
}
