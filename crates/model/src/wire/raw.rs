//! `Raw<T>`: JSON that is a `T`, carried as sent and decoded only by whoever needs a `T`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A `T` as JSON. A snapshot or watch event carries its canaries this way: a canary's spec
/// refuses unknown fields (it is what people write), and a proxy that never looks at canaries
/// must not stop following its mesh because a newer control plane added a canary option. It
/// serializes exactly as it was read.
pub struct Raw<T> {
    value: Value,
    of: PhantomData<fn() -> T>,
}

impl<T> Raw<T> {
    pub fn from_value(value: Value) -> Raw<T> {
        Raw {
            value,
            of: PhantomData,
        }
    }

    pub fn as_value(&self) -> &Value {
        &self.value
    }
}

impl<T: DeserializeOwned> Raw<T> {
    pub fn decode(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.value)
    }
}

impl<T> Clone for Raw<T> {
    fn clone(&self) -> Self {
        Raw::from_value(self.value.clone())
    }
}

impl<T> PartialEq for Raw<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T> fmt::Debug for Raw<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> Serialize for Raw<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Raw<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Raw::from_value)
    }
}
