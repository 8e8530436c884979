//! The one place where values become bytes and back.
//!
//! Every stored value is a small envelope: one format byte followed by the
//! [postcard](https://docs.rs/postcard) encoding of the value. postcard is
//! compact, maintained and has a stable wire format; the leading byte lets a
//! later release change the encoding and still read what an older one wrote.

use serde::{Serialize, de::DeserializeOwned};

/// The envelope format this build writes (and the only one it reads).
pub const FORMAT_V1: u8 = 1;

/// A value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are empty, so there is no envelope to read.
    #[error("[DURABLE-CODEC] empty record: no envelope byte")]
    Empty,
    /// The envelope names a format this build does not know.
    #[error(
        "[DURABLE-CODEC] unknown envelope format {found} (this build reads format {FORMAT_V1})"
    )]
    UnknownFormat {
        /// The format byte that was found.
        found: u8,
    },
    /// The payload does not decode as the expected type.
    #[error("[DURABLE-CODEC] cannot decode {type_name}: {reason}")]
    Decode {
        /// The Rust type that was expected.
        type_name: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// The value could not be encoded (a serde error from its `Serialize` impl).
    #[error("[DURABLE-CODEC] cannot encode {type_name}: {reason}")]
    Encode {
        /// The Rust type being encoded.
        type_name: &'static str,
        /// What the encoder reported.
        reason: String,
    },
}

/// Encodes `value` into a versioned envelope.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    thread_local! {
        /// Reused across encodes: a small value is written into it and
        /// copied out at its exact size, instead of growing a new buffer
        /// step by step.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    /// From this size a value keeps the buffer it was written into (no
    /// copy), and the next encode starts from one as large...
    const LARGE: usize = 16 << 10;
    /// ...up to this size: a rare huge value does not stay allocated for
    /// the thread's life.
    const KEPT: usize = 1 << 20;
    let write = |out: &mut Vec<u8>| {
        out.push(FORMAT_V1);
        postcard::to_io(value, &mut *out)
            .map(drop)
            .map_err(|e| CodecError::Encode {
                type_name: std::any::type_name::<T>(),
                reason: e.to_string(),
            })
    };
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            write(&mut buf)?;
            if buf.len() < LARGE {
                return Ok(buf.to_vec());
            }
            // room for a value a little larger next time; what is handed
            // out keeps no more than an eighth unused (a shrink in place)
            let margin = |len: usize| len + len / 8;
            let next = Vec::with_capacity(margin(buf.len()).min(KEPT));
            let mut out = std::mem::replace(&mut *buf, next);
            if out.capacity() > margin(out.len()) {
                out.shrink_to_fit();
            }
            Ok(out)
        }
        // an encode from inside a `Serialize` impl: a buffer of its own
        Err(_) => {
            let mut out = Vec::new();
            write(&mut out).map(|_| out)
        }
    })
}

/// Decodes an envelope written by [`encode`]. Trailing bytes are an error:
/// they mean the record is not what the reader thinks it is.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = decode_head::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(CodecError::Decode {
            type_name: std::any::type_name::<T>(),
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

/// Decodes the value an envelope starts with, and the bytes after it.
pub(crate) fn decode_head<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), CodecError> {
    let (&format, payload) = bytes.split_first().ok_or(CodecError::Empty)?;
    if format != FORMAT_V1 {
        return Err(CodecError::UnknownFormat { found: format });
    }
    let decode_err = |reason: String| CodecError::Decode {
        type_name: std::any::type_name::<T>(),
        reason,
    };
    postcard::take_from_bytes(payload).map_err(|e| {
        // postcard drops a `Deserialize` impl's own words: give them back
        let said = REFUSED.with(|r| r.borrow_mut().take());
        decode_err(match (e, said) {
            (postcard::Error::SerdeDeCustom, Some(why)) => why,
            (e, _) => e.to_string(),
        })
    })
}

thread_local! {
    /// Why a `Deserialize` impl of this crate refused a value ([`refuse`]),
    /// for the error [`decode`] reports.
    static REFUSED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A `Deserialize` impl's refusal: the error for serde, its text kept for
/// [`decode`]'s error (postcard keeps no text of a custom error). Read only
/// when a decode fails, so the decoding of good values does not touch it.
pub(crate) fn refuse<E: serde::de::Error>(why: String) -> E {
    let error = E::custom(&why);
    REFUSED.with(|r| *r.borrow_mut() = Some(why));
    error
}

/// The encoding of variant `index` of an enum whose variant holds a value
/// encoded as `value` (postcard: varint index, then the payload).
pub fn variant(index: u32, value: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (&format, payload) = value.split_first().ok_or(CodecError::Empty)?;
    if format != FORMAT_V1 {
        return Err(CodecError::UnknownFormat { found: format });
    }
    let mut out = encode(&index)?;
    out.extend_from_slice(payload);
    Ok(out)
}

/// The encoding of a `Vec<T>` from the encodings of its elements
/// (postcard: varint length, then the elements).
pub fn seq(parts: &[Vec<u8>]) -> Result<Vec<u8>, CodecError> {
    let mut out = encode(&(parts.len() as u64))?;
    for part in parts {
        let (&format, payload) = part.split_first().ok_or(CodecError::Empty)?;
        if format != FORMAT_V1 {
            return Err(CodecError::UnknownFormat { found: format });
        }
        out.extend_from_slice(payload);
    }
    Ok(out)
}

/// The encoding of `Ok::<T, E>(value)` from the encoding of `value`:
/// postcard writes an enum as its variant index (a varint; `Ok` is 0)
/// followed by the payload, so no decoding of `T` is needed.
pub fn ok_variant(value: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (&format, payload) = value.split_first().ok_or(CodecError::Empty)?;
    if format != FORMAT_V1 {
        return Err(CodecError::UnknownFormat { found: format });
    }
    let mut out = Vec::with_capacity(value.len() + 1);
    out.extend_from_slice(&[FORMAT_V1, 0]);
    out.extend_from_slice(payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn variant_matches_encoding_an_enum() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        enum E {
            A(u8),
            B(String),
        }
        let inner = encode(&String::from("hi")).unwrap();
        assert_eq!(
            variant(1, &inner).unwrap(),
            encode(&E::B("hi".into())).unwrap()
        );
        assert_eq!(
            decode::<E>(&variant(0, &encode(&7u8).unwrap()).unwrap()).unwrap(),
            E::A(7)
        );
    }

    #[test]
    fn seq_matches_encoding_a_vec() {
        let parts: Vec<Vec<u8>> = ["a", "bc"]
            .iter()
            .map(|s| encode(&s.to_string()).unwrap())
            .collect();
        assert_eq!(
            seq(&parts).unwrap(),
            encode(&vec!["a".to_string(), "bc".to_string()]).unwrap()
        );
    }

    #[test]
    fn ok_variant_matches_encoding_an_ok() {
        let inner = encode(&(7u32, String::from("x"))).unwrap();
        let wrapped = ok_variant(&inner).unwrap();
        assert_eq!(
            wrapped,
            encode(&Ok::<(u32, String), String>((7, "x".into()))).unwrap()
        );
        assert_eq!(
            decode::<Result<(u32, String), String>>(&wrapped).unwrap(),
            Ok((7, "x".into()))
        );
    }

    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let v = (String::from("order-1"), 42u64, vec![1u8, 2, 3]);
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<(String, u64, Vec<u8>)>(&bytes).unwrap(), v);
        assert_eq!(decode::<u8>(&[]), Err(CodecError::Empty));
        assert!(matches!(
            decode::<u8>(&[9, 1]),
            Err(CodecError::UnknownFormat { found: 9 })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode::<(String, u64, Vec<u8>)>(&long),
            Err(CodecError::Decode { .. })
        ));
        assert!(matches!(
            decode::<(String, u64, Vec<u8>)>(&bytes[..3]),
            Err(CodecError::Decode { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode::<(String, Vec<u64>, Option<bool>)>(&bytes);
        }
    }
}
