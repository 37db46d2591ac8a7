//! A JSON string field that takes JSON strings only. poem-openapi's `String` also reads a JSON
//! number or boolean as its text (`"external_user_id": false` became "false"), which the
//! contract's schema (`type: string`) refuses and a strict client never sends on purpose.

use std::borrow::Cow;

use poem_openapi::registry::MetaSchemaRef;
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Text(pub String);

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

/// The string of an optional text field.
pub fn plain(t: Option<Text>) -> Option<String> {
    t.map(|t| t.0)
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Ok(Text(s)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_json_strings_are_text() {
        assert_eq!(
            Text::parse_from_json(Some(json!("a"))).unwrap(),
            Text("a".into())
        );
        for not_text in [json!(false), json!(0), json!(1.5), json!([]), json!({})] {
            assert!(
                Text::parse_from_json(Some(not_text.clone())).is_err(),
                "{not_text}"
            );
        }
    }
}
