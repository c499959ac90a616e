//! Messages put together from pieces encoded before: what lets a changed host re-encode only itself.

/// Appends the already-encoded messages `pieces` to `out` as the repeated message field `field`:
/// the bytes prost would write for them, in that order. `out` grows once, to its final length: at
/// 10,000 hosts, growing it piece by piece copied the megabyte again at every doubling.
pub(super) fn append_repeated<'a>(
    field: u32,
    pieces: impl Iterator<Item = &'a Vec<u8>> + Clone,
    out: &mut Vec<u8>,
) {
    let key = prost::encoding::key_len(field);
    let length: usize = pieces
        .clone()
        .map(|p| key + prost::encoding::encoded_len_varint(p.len() as u64) + p.len())
        .sum();
    out.reserve(length);
    for piece in pieces {
        prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, out);
        prost::encoding::encode_varint(piece.len() as u64, out);
        out.extend_from_slice(piece);
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
    use prost::Message;

    #[test]
    fn appended_pieces_decode_as_the_repeated_field() {
        let hosts: Vec<VirtualHost> = ["a", "b"]
            .into_iter()
            .map(|name| VirtualHost {
                name: name.into(),
                domains: vec![format!("{name}.example.com")],
                ..Default::default()
            })
            .collect();
        let pieces: Vec<Vec<u8>> = hosts.iter().map(|h| h.encode_to_vec()).collect();
        let mut out = Vec::new();
        super::append_repeated(2, pieces.iter(), &mut out);
        let whole = RouteConfiguration {
            virtual_hosts: hosts,
            ..Default::default()
        };
        assert_eq!(out, whole.encode_to_vec());
    }
}
