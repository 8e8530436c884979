//! Key layout. Every key starts with a one-byte table tag so that all tables
//! share one sled tree and one atomic batch can span them.
//!
//! | key                         | value                        |
//! |-----------------------------|------------------------------|
//! | `i` + instance id           | [`InstanceRecord`](crate::engine::InstanceRecord) |

/// Tag of instance records.
pub(crate) const INSTANCE: u8 = b'i';

/// The key of an instance's record.
pub(crate) fn instance(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.push(INSTANCE);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The instance id in an instance key.
pub(crate) fn instance_id(key: &[u8]) -> String {
    String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned()
}
