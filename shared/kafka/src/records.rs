//! Record batches (message format v2, Kafka 0.11+) as a fetch returns them: complete batches
//! decoded and CRC-32C checked by `kafka-protocol`, a partial batch at the end (the broker cuts
//! at `max_bytes`) left for the next fetch, and the compression codecs producers use decoded
//! here by pure-Rust decoders: gzip (flate2), snappy (snap, raw or xerial-framed), lz4 (frame
//! format, lz4_flex) and zstd (ruzstd).

use std::io::Read;

use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

use crate::Message;

/// Fixed part of a v2 batch header, up to and including the record count.
const BATCH_HEADER: usize = 61;
/// Bytes one batch may decompress to at most: a defence against a compressed bomb.
const MAX_DECOMPRESSED: u64 = 512 * 1024 * 1024;
/// The `isControl` bit of a batch's attributes (transaction markers, never user records).
const CONTROL: i16 = 0x20;

/// Decodes the complete batches in `data`: the records at offset `from` or later (a fetch
/// returns the whole batch holding `from`), skipping control records, and the offset to fetch
/// next (past the last complete batch, whose last records compaction may have removed).
pub fn decode_batches(mut data: Bytes, partition: i32, from: i64) -> Result<(Vec<Message>, i64), String> {
    let mut messages = Vec::new();
    let mut next = from;
    while data.len() >= BATCH_HEADER {
        let base = i64::from_be_bytes(data[0..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        let total =
            12 + usize::try_from(length).map_err(|_| format!("a batch at offset {base} has a negative length"))?;
        if data.len() < total {
            break; // cut by the broker at max_bytes: fetched again next time
        }
        let magic = data[16] as i8;
        if magic != 2 {
            return Err(format!(
                "partition {partition} offset {base}: message format v{magic} (Kafka before 0.11) is not supported"
            ));
        }
        let attributes = i16::from_be_bytes(data[21..23].try_into().expect("2 bytes"));
        let last_delta = i32::from_be_bytes(data[23..27].try_into().expect("4 bytes"));
        let mut batch = data.split_to(total);
        let set = RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(decompress))
            .map_err(|e| format!("partition {partition} offset {base}: {e:#}"))?;
        let batch_next = base + i64::from(last_delta) + 1;
        next = next.max(batch_next);
        if attributes & CONTROL != 0 {
            continue;
        }
        for r in set.records {
            if r.offset < from || r.control {
                continue;
            }
            let headers = r
                .headers
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k.into_bytes()).into_owned(), v))
                .collect();
            messages.push(Message {
                partition,
                offset: r.offset,
                batch_next,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers,
            });
        }
    }
    Ok((messages, next))
}

/// The records part of a batch, decompressed.
fn decompress(data: &mut Bytes, compression: Compression) -> anyhow::Result<Bytes> {
    let raw = data.copy_to_bytes(data.remaining());
    let out = match compression {
        Compression::None => return Ok(raw),
        Compression::Gzip => read_all(flate2::read::MultiGzDecoder::new(&raw[..]), "gzip")?,
        Compression::Snappy => snappy(&raw)?,
        Compression::Lz4 => read_all(lz4_flex::frame::FrameDecoder::new(&raw[..]), "lz4")?,
        Compression::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(&raw[..])
                .map_err(|e| anyhow::Error::msg(format!("zstd: {e}")))?;
            read_all(decoder, "zstd")?
        }
    };
    Ok(Bytes::from(out))
}

fn read_all(reader: impl Read, codec: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(MAX_DECOMPRESSED + 1).read_to_end(&mut out).map_err(|e| anyhow::Error::msg(format!("{codec}: {e}")))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(anyhow::Error::msg(format!("{codec}: a batch decompresses to more than {MAX_DECOMPRESSED} bytes")));
    }
    Ok(out)
}

/// Kafka's snappy: the Java client frames it the xerial way (a magic header, then blocks
/// each prefixed by its length); other producers send one raw snappy block.
fn snappy(raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    const XERIAL: &[u8] = b"\x82SNAPPY\x00";
    let err = |e: snap::Error| anyhow::Error::msg(format!("snappy: {e}"));
    if !raw.starts_with(XERIAL) || raw.len() < 16 {
        return snap::raw::Decoder::new().decompress_vec(raw).map_err(err);
    }
    let mut rest = &raw[16..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(anyhow::Error::msg("snappy: a cut block length".to_string()));
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let block = rest.get(4..4 + len).ok_or_else(|| anyhow::Error::msg("snappy: a cut block".to_string()))?;
        out.extend(snap::raw::Decoder::new().decompress_vec(block).map_err(err)?);
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(anyhow::Error::msg("snappy: a batch decompresses to too many bytes".to_string()));
        }
        rest = &rest[4 + len..];
    }
    Ok(out)
}
