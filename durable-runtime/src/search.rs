//! Search attributes: the values lists filter instances by, and their
//! index form (a base type: the store's keys and the commands use it).

use serde::{Deserialize, Serialize};

/// The value of a search attribute: what lists can filter instances by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SearchValue {
    /// Text (without NUL bytes, to be indexed).
    Str(String),
    /// A whole number.
    Int(i64),
    /// A flag.
    Bool(bool),
}

impl From<&str> for SearchValue {
    fn from(v: &str) -> Self {
        SearchValue::Str(v.to_owned())
    }
}

impl From<String> for SearchValue {
    fn from(v: String) -> Self {
        SearchValue::Str(v)
    }
}

impl From<i64> for SearchValue {
    fn from(v: i64) -> Self {
        SearchValue::Int(v)
    }
}

impl From<bool> for SearchValue {
    fn from(v: bool) -> Self {
        SearchValue::Bool(v)
    }
}

impl SearchValue {
    /// Its index form: a type tag, then bytes that sort as the values do;
    /// `None` for text with a NUL byte (kept, not indexed).
    pub(crate) fn index_bytes(&self) -> Option<Vec<u8>> {
        Some(match self {
            SearchValue::Str(s) if s.contains('\0') => return None,
            SearchValue::Str(s) => [b"s".as_slice(), s.as_bytes()].concat(),
            SearchValue::Int(i) => {
                [b"i".as_slice(), &((*i as u64) ^ (1 << 63)).to_be_bytes()].concat()
            }
            SearchValue::Bool(b) => vec![b'b', u8::from(*b)],
        })
    }

    /// Its size as [`Limits::attribute_bytes`](crate::Limits::attribute_bytes)
    /// counts it: text by its bytes, a number 8, a flag 1.
    pub(crate) fn size(&self) -> usize {
        match self {
            SearchValue::Str(s) => s.len(),
            SearchValue::Int(_) => 8,
            SearchValue::Bool(_) => 1,
        }
    }

    /// As JSON: a string, a number or a boolean.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SearchValue::Str(s) => s.clone().into(),
            SearchValue::Int(i) => (*i).into(),
            SearchValue::Bool(b) => (*b).into(),
        }
    }

    /// The values a text typed by a person may mean: the text itself, and
    /// the number or flag it spells.
    pub fn parse_all(text: &str) -> Vec<SearchValue> {
        let mut all = vec![SearchValue::Str(text.to_owned())];
        if let Ok(i) = text.parse::<i64>() {
            all.push(SearchValue::Int(i));
        }
        if let Ok(b) = text.parse::<bool>() {
            all.push(SearchValue::Bool(b));
        }
        all
    }
}
