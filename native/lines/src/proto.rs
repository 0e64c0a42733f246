//! The few protobuf encodings the OTLP and Loki renderers need, written by hand: varints, fixed64, and
//! length-delimited fields (strings, bytes, submessages built in a scratch buffer).

pub fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(field) << 3 | u64::from(wire), out);
}

/// A length-delimited field: a string, bytes or an encoded submessage.
pub fn bytes(field: u32, value: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

pub fn fixed64(field: u32, value: u64, out: &mut Vec<u8>) {
    key(field, 1, out);
    out.extend_from_slice(&value.to_le_bytes());
}

pub fn uint(field: u32, value: u64, out: &mut Vec<u8>) {
    key(field, 0, out);
    varint(value, out);
}

/// A submessage written by `write` into a scratch buffer, then framed into `out`.
pub fn message(
    field: u32,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>),
) {
    let start = scratch.len();
    write(scratch);
    bytes(field, &scratch[start..], out);
    scratch.truncate(start);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_as_protobuf_writes_them() {
        let mut out = Vec::new();
        for value in [0u64, 1, 127, 128, 300, u64::MAX] {
            varint(value, &mut out);
        }
        assert_eq!(
            out,
            [
                0, 1, 127, 0x80, 1, 0xac, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                1
            ]
        );
    }
}
