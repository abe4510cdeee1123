//! Reading a request body strictly into a type that is lenient on the wire: unknown fields are refused by name.
//!
//! Types the server also sends (an [`Endpoint`](super::Endpoint), a [`Workload`](super::Workload))
//! must not `deny_unknown_fields`, or a client would fail on the first field a newer server adds.
//! A request, though, should name a typo instead of dropping it: [`strict`] checks the body's
//! top-level keys against the fields serde's derive declares for the type, so the list is never
//! written twice.

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `value` as a `T`, refusing a top-level field `T` does not declare with serde's own message
/// (`unknown field `x`, expected one of ...`).
pub fn strict<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    if let Some(object) = value.as_object() {
        let known = fields_of::<T>();
        if let Some(unknown) = object.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(de::Error::unknown_field(unknown, known));
        }
    }
    serde_json::from_value(value)
}

/// The JSON field names a `#[derive(Deserialize)]` struct declares (after its renames); empty
/// for anything that is not such a struct.
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only records the field list a struct's `Deserialize` asks for, then
/// stops.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("only the field names were wanted")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Stop {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}
