//! What every provider's `payload` module is built from. A provider's payload structs are the
//! shape of its API's JSON: the mapper reads them and the simulator writes them, so the two
//! cannot drift. They read JSON as leniently as a provider's data demands: a field that is
//! absent, null or of another type is no value (not a failed page), unknown fields are ignored.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A field read leniently: `None` when absent, null, or not a `T`. Written as `T` or null.
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient<T>(pub Option<T>);

/// A number field.
pub type Num = Lenient<f64>;
/// A text field.
pub type Text = Lenient<String>;

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<T> Lenient<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

impl Lenient<f64> {
    pub fn num(&self) -> Option<f64> {
        self.0
    }
}

impl Lenient<String> {
    pub fn str(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<T> From<T> for Lenient<T> {
    fn from(v: T) -> Self {
        Lenient(Some(v))
    }
}

impl From<&str> for Lenient<String> {
    fn from(v: &str) -> Self {
        Lenient(Some(v.to_string()))
    }
}

impl From<i64> for Lenient<f64> {
    fn from(v: i64) -> Self {
        Lenient(Some(v as f64))
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(Lenient(T::deserialize(v).ok()))
    }
}

impl<T: Serialize> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A whole number is written as an integer, as providers send counts and epoch times
        // (readers that take integers, such as the push time check, refuse `1772366400.0`).
        if let Ok(Value::Number(n)) = serde_json::to_value(&self.0) {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                if f.abs() < 9.0e15 {
                    return (f as i64).serialize(s);
                }
            }
        }
        self.0.serialize(s)
    }
}

/// A provider's record id, whatever JSON it is sent as (Whoop's are numbers or strings);
/// read as text: a string as itself, any other value as its JSON, absent or null as "".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExternalId(pub Value);

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Value::String(s) => f.write_str(s),
            Value::Null => Ok(()),
            other => write!(f, "{other}"),
        }
    }
}

impl From<&str> for ExternalId {
    fn from(v: &str) -> Self {
        ExternalId(Value::String(v.into()))
    }
}

impl From<String> for ExternalId {
    fn from(v: String) -> Self {
        ExternalId(Value::String(v))
    }
}

impl From<i64> for ExternalId {
    fn from(v: i64) -> Self {
        ExternalId(Value::from(v))
    }
}

/// One list item as `T`. An item that is not an object has no fields (all `None`), as a
/// mapper reading it field by field would see it.
pub fn item<T: DeserializeOwned + Default>(v: &Value) -> T {
    if v.is_object() {
        T::deserialize(v).unwrap_or_default()
    } else {
        T::default()
    }
}

/// The list under `key` of `body`, each item as `T`; `None` when there is no such list.
pub fn items<T: DeserializeOwned + Default>(body: &Value, key: &str) -> Option<Vec<T>> {
    Some(body.get(key)?.as_array()?.iter().map(item).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(default)]
    struct Item {
        n: Num,
        t: Text,
        id: ExternalId,
    }

    #[test]
    fn fields_of_the_wrong_type_are_no_value() {
        let got: Vec<Item> = items(
            &json!({"list": [{"n": "x", "t": 3, "id": 7}, {"n": 2, "t": "a", "extra": 1}, 5]}),
            "list",
        )
        .unwrap();
        assert_eq!((got[0].n.num(), got[0].t.str()), (None, None));
        assert_eq!(got[0].id.to_string(), "7");
        assert_eq!((got[1].n.num(), got[1].t.str()), (Some(2.0), Some("a")));
        assert_eq!(got[1].id.to_string(), "");
        assert_eq!(got[2].n.num(), None);
        assert!(items::<Item>(&json!({"list": 1}), "list").is_none());
    }
}
