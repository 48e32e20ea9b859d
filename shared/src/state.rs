//! The per-trigger state the core keeps between polls, and its binary format.
//!
//! Owns the 64-bit version hash, the block-encoded key snapshot (`SnapshotWriter`,
//! `Snapshot`, `Cursor`) and `State` with `encode`/`decode`. Does no I/O: where the bytes
//! live is `store`'s business, what changed between two listings is `diff`'s.
//!
//! # Stored format, versions 1, 2 and 3
//!
//! Everything here is part of the stored format: changing any of it needs a new
//! `FORMAT_VERSION` and a reader for the old one.
//!
//! - `version_hash` is FNV-1a 64 over the version's UTF-8 bytes.
//! - Varints are unsigned LEB128.
//! - A state object is: the 8 magic bytes `OWFEED\0S`, varint format version, varint raw length
//!   and varint deflated length of the header, the header (raw deflate of a JSON object holding
//!   every `State` field but the snapshot), varint snapshot length, the snapshot, and a trailer
//!   over every byte before it: in version 1 a CRC-32 (little endian), which only catches
//!   damage; in version 2 an HMAC-SHA256 (32 bytes) with the feed's `stateKey` ([`Seal`]),
//!   which also catches forgery. The HMAC's message is the length-prefixed domain `state`, the
//!   length-prefixed trigger (`namespace/name`), then the bytes: a state sealed for another
//!   trigger, or with another key, does not verify. Version 2 is verified before anything in
//!   it is parsed. A feed with a key reads versions 2 and 3 only; a feed created before keys
//!   existed (no `stateKey` in its config) reads and writes version 1.
//! - Version 3 is version 2 (sealed the same way) with one change in the header: instead of
//!   `cursor` (one key: the pass in progress resumes after it, to the end of the key space),
//!   `resume` lists the key ranges a cut pass left to list, `[[after, before], …]` (each bound a
//!   key or `null` for open; both exclusive; sorted and disjoint), and `cursor` is `null`. A cut
//!   parallel pass leaves one range per key range it listed, so its checkpoint needs several
//!   cursors, which a version-2 reader would misread as one: it refuses version 3 instead.
//!   `encode_sealed` writes version 3 only for such a checkpoint; every other sealed state (no
//!   listing in progress, or one open range after a key) is written as version 2, byte for
//!   byte as before.
//! - Version 1 holds one cursor only: `encode` writes a checkpoint of several ranges as the
//!   cursor of its first range's start (all ranges and everything between them to be listed
//!   again, which the snapshot there is ready for: its entries are those of the new listing or
//!   of the old one). A feed without a key thus loses the progress of a cut parallel pass past
//!   its first unfinished range, never an event; keys move it to version 3 (`reseal`).
//! - A snapshot is: varint block count, then per block the index entry (varint entry count,
//!   varint raw key-column length, varint block byte length, first key and last key each as
//!   varint length + bytes), then the blocks' bytes back to back.
//! - A block holds up to `BLOCK_ENTRIES` entries in ascending key order: the key column,
//!   compressed on its own with raw deflate, followed by the entry count × 8 bytes of version
//!   hashes (u64 little endian, left uncompressed: hashes are random, deflate cannot shrink
//!   them). The key column is front-coded against the previous key of the same block, laid
//!   out column by column so deflate sees runs of alike bytes: every entry's shared-prefix
//!   length (varint), then every entry's suffix length (varint), then all suffix bytes.
//!   The first entry of a block shares nothing, so each block decodes on its own.
//! - The header's `versions` (key → version string) is optional and written only for sources
//!   that keep versions: older states read as `None`, and older readers ignore it. So are
//!   `writes` (the store's write counter, for rollback checks), `rebaselined` (a snapshot
//!   source's newest re-baseline) and `wholeListingStartedMs`, written only when set.

use std::collections::BTreeMap;
use std::fmt;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::Secret;
use crate::source::{right_after, ListRange};

/// The newest state format this build reads and writes: sealed with the feed's `stateKey`,
/// its checkpoint of several key ranges (see the module doc).
const FORMAT_VERSION: u32 = 3;

/// The sealed format of a state whose checkpoint is at most one cursor (what the first build
/// with keys wrote): `encode_sealed` keeps it for every such state.
const SEALED_FORMAT_VERSION: u32 = 2;

/// The format of feeds without a `stateKey` (created before keys existed): a CRC-32 trailer.
const LEGACY_FORMAT_VERSION: u32 = 1;

/// Bytes of the HMAC-SHA256 trailer of a sealed (version 2) state.
pub const MAC_LEN: usize = 32;

/// Entries per snapshot block: small enough to decode one block at a time in little memory,
/// large enough for deflate to find the regularities of the keys.
const BLOCK_ENTRIES: usize = 4096;

const MAGIC: &[u8; 8] = b"OWFEED\0S";

/// Decoding refuses blocks claiming more entries than this (caps allocations).
const MAX_BLOCK_ENTRIES: u64 = 1 << 16;

/// Deflate cannot expand data more than ~1032:1, so a claimed raw length beyond this ratio
/// of the compressed length is a lie; checking it caps allocations by the input size.
const MAX_INFLATE_RATIO: u64 = 1040;

/// Level 1 (fast): snapshots of regular keys compress almost as well as with the default level
/// at a fraction of the time, and the time budget is per poll.
const DEFLATE_LEVEL: u32 = 1;

/// The hash of an entry's version that the snapshot stores instead of the version itself.
///
/// FNV-1a 64 over the UTF-8 bytes. It is part of the stored format: it must give the same
/// value on every platform and in every release, or every key would look updated.
pub fn version_hash(version: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in version.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The key a feed's state is authenticated with (its `stateKey`) and the trigger it belongs
/// to: HMAC-SHA256 over a domain (what the bytes are: `state`, `lease`, `marker`), the trigger,
/// and the message, each length-prefixed, so no tag made for one of them verifies as another.
/// Computed with ring, whose assembly SHA-256 keeps its speed in the size-optimised release
/// build (about 5 ms for the 8 MB state of a million keys).
#[derive(Clone)]
pub struct Seal {
    key: ring::hmac::Key,
    trigger: String,
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seal").field("trigger", &self.trigger).finish_non_exhaustive()
    }
}

impl Seal {
    /// The seal of `trigger` (`namespace/name`) with `key`.
    pub fn new(key: &Secret, trigger: &str) -> Seal {
        Seal {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.expose().as_bytes()),
            trigger: trigger.to_string(),
        }
    }

    /// The tag of `message` in `domain`.
    pub fn tag(&self, domain: &str, message: &[u8]) -> [u8; MAC_LEN] {
        let mut context = ring::hmac::Context::with_key(&self.key);
        for part in [domain.as_bytes(), self.trigger.as_bytes()] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        context.update(message);
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    /// True when `tag` (the whole tag, or its first bytes, at least 16) is `message`'s in
    /// `domain`; compared in constant time.
    pub fn verify(&self, domain: &str, message: &[u8], tag: &[u8]) -> bool {
        if !(16..=MAC_LEN).contains(&tag.len()) {
            return false;
        }
        let expected = self.tag(domain, message);
        expected[..tag.len()].iter().zip(tag).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }

    /// `verify` of a tag written as hex (lowercase or uppercase); false for anything else.
    pub fn verify_hex(&self, domain: &str, message: &[u8], tag: &str) -> bool {
        if !tag.is_ascii() || !tag.len().is_multiple_of(2) {
            return false;
        }
        let bytes: Option<Vec<u8>> =
            (0..tag.len()).step_by(2).map(|i| u8::from_str_radix(&tag[i..i + 2], 16).ok()).collect();
        bytes.is_some_and(|b| self.verify(domain, message, &b))
    }

    /// The first `bytes` bytes of `message`'s tag in `domain`, as lowercase hex.
    pub fn tag_hex(&self, domain: &str, message: &[u8], bytes: usize) -> String {
        self.tag(domain, message)[..bytes.min(MAC_LEN)].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A short public name of the key (not of the trigger): tells two keys apart without
    /// revealing either.
    pub fn fingerprint(&self) -> String {
        let tag = ring::hmac::sign(&self.key, b"owfeed stateKey fingerprint");
        tag.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why state bytes could not be read, or a snapshot could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The bytes do not start with the state magic: not a state object written by owfeed.
    BadMagic,
    /// Written by a newer release in a format this build cannot read.
    UnsupportedVersion {
        /// The version found in the bytes.
        found: u64,
    },
    /// The bytes are cut short or damaged; the detail says where.
    Corrupt(String),
    /// The bytes are not authenticated by the feed's key: forged, from another trigger, sealed
    /// with another key, written without one, or damaged; the detail says which it can tell.
    Unauthenticated(String),
    /// Keys given out of ascending order to a snapshot writer or to `Snapshot::concat`.
    KeyOrder {
        /// The key that is not after `previous`.
        key: String,
        /// The key before it.
        previous: String,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::BadMagic => f.write_str("state: not an owfeed state object (bad magic)"),
            StateError::UnsupportedVersion { found } => write!(
                f,
                "state: format version {found} is not supported (this build reads versions 1 to {FORMAT_VERSION})"
            ),
            StateError::Corrupt(detail) => write!(f, "state: {detail}"),
            StateError::Unauthenticated(detail) => write!(f, "state: not authenticated: {detail}"),
            StateError::KeyOrder { key, previous } => {
                write!(f, "state: snapshot key {key:?} is not after the previous key {previous:?}")
            }
        }
    }
}

impl std::error::Error for StateError {}

fn corrupt(detail: impl Into<String>) -> StateError {
    StateError::Corrupt(detail.into())
}

/// Where one block lives in `Snapshot::data` and what it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BlockMeta {
    offset: usize,
    byte_len: usize,
    count: usize,
    raw_len: usize,
    first_key: String,
    last_key: String,
}

/// A sorted set of (key, version hash) entries, encoded in independently compressed blocks.
///
/// Two snapshots are equal when they hold the same entries, whatever their block layout.
#[derive(Clone, Default)]
pub struct Snapshot {
    data: Vec<u8>,
    blocks: Vec<BlockMeta>,
    len: usize,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("entries", &self.len)
            .field("blocks", &self.blocks.len())
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Snapshot) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Snapshot {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the snapshot holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size of the encoded blocks in bytes (without the index).
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// All entries in ascending key order, decoding one block at a time.
    pub fn iter(&self) -> Iter<'_> {
        Iter { cursor: self.cursor() }
    }

    /// The entries with keys strictly after `after`, skipping whole blocks through the index.
    pub fn iter_from(&self, after: &str) -> Iter<'_> {
        Iter { cursor: self.cursor_after(after) }
    }

    /// A cursor on the first entry; reads keys without allocating one string per entry.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor::new(self, 0)
    }

    /// A cursor on the first entry whose key is strictly after `after`.
    pub fn cursor_after(&self, after: &str) -> Cursor<'_> {
        // Blocks before the last one starting at or before `after` hold only smaller keys.
        let first = self.blocks.partition_point(|b| b.first_key.as_str() <= after).saturating_sub(1);
        let mut cursor = Cursor::new(self, first);
        while cursor.current().is_some_and(|(key, _)| key <= after) {
            cursor.advance();
        }
        cursor
    }

    /// Joins snapshots of disjoint ascending key ranges (the outputs of range diffs) without
    /// re-encoding; fails when a part does not start after the previous part's last key.
    pub fn concat(parts: Vec<Snapshot>) -> Result<Snapshot, StateError> {
        let mut out = Snapshot::default();
        for part in parts {
            if let (Some(previous), Some(next)) = (out.blocks.last(), part.blocks.first()) {
                if next.first_key <= previous.last_key {
                    return Err(StateError::KeyOrder {
                        key: next.first_key.clone(),
                        previous: previous.last_key.clone(),
                    });
                }
            }
            let base = out.data.len();
            out.data.extend_from_slice(&part.data);
            out.blocks.extend(part.blocks.into_iter().map(|b| BlockMeta { offset: b.offset + base, ..b }));
            out.len += part.len;
        }
        Ok(out)
    }

    /// The stored form: block index then block bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + self.blocks.len() * 64 + 8);
        put_varint(&mut out, self.blocks.len() as u64);
        for block in &self.blocks {
            put_varint(&mut out, block.count as u64);
            put_varint(&mut out, block.raw_len as u64);
            put_varint(&mut out, block.byte_len as u64);
            put_bytes(&mut out, block.first_key.as_bytes());
            put_bytes(&mut out, block.last_key.as_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }

    /// Reads the stored form and checks every block (order, lengths, UTF-8), so iterating a
    /// decoded snapshot cannot meet damaged data. Never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, StateError> {
        let mut reader = Reader { bytes, pos: 0 };
        let block_count = reader.varint().ok_or_else(|| corrupt("truncated snapshot index"))?;
        // Every block takes at least 5 index bytes and 8 data bytes.
        if block_count > bytes.len() as u64 / 13 {
            return Err(corrupt(format!("snapshot index claims {block_count} blocks in {} bytes", bytes.len())));
        }
        let mut blocks = Vec::with_capacity(block_count as usize);
        let mut offset = 0usize;
        let mut len = 0usize;
        for i in 0..block_count {
            let truncated = || corrupt(format!("truncated snapshot index at block {i}"));
            let count = reader.varint().ok_or_else(truncated)?;
            let raw_len = reader.varint().ok_or_else(truncated)?;
            let byte_len = reader.varint().ok_or_else(truncated)?;
            let first_key = reader.string().ok_or_else(truncated)?;
            let last_key = reader.string().ok_or_else(truncated)?;
            if count == 0 || count > MAX_BLOCK_ENTRIES {
                return Err(corrupt(format!("snapshot block {i} claims {count} entries")));
            }
            let keys_len = byte_len.checked_sub(count * 8).ok_or_else(|| {
                corrupt(format!("snapshot block {i} is {byte_len} bytes, too short for {count} hashes"))
            })?;
            if raw_len > keys_len.saturating_mul(MAX_INFLATE_RATIO).saturating_add(64) || byte_len > bytes.len() as u64
            {
                return Err(corrupt(format!("snapshot block {i} claims impossible lengths")));
            }
            let (Some(first_key), Some(last_key)) = (first_key, last_key) else {
                return Err(corrupt(format!("snapshot block {i}: index key is not UTF-8")));
            };
            if let Some(previous) = blocks.last().map(|b: &BlockMeta| &b.last_key) {
                if first_key <= *previous {
                    return Err(corrupt(format!("snapshot block {i} does not start after block {}", i - 1)));
                }
            }
            blocks.push(BlockMeta {
                offset,
                byte_len: byte_len as usize,
                count: count as usize,
                raw_len: raw_len as usize,
                first_key,
                last_key,
            });
            offset = offset.saturating_add(byte_len as usize);
            len += count as usize;
        }
        let data = &bytes[reader.pos..];
        if let Some(short) = blocks.iter().position(|b| b.offset.saturating_add(b.byte_len) > data.len()) {
            return Err(corrupt(format!("truncated snapshot block {short}")));
        }
        if data.len() > offset {
            return Err(corrupt(format!("{} unexpected bytes after the last snapshot block", data.len() - offset)));
        }
        let snapshot = Snapshot { data: data.to_vec(), blocks, len };
        let mut decoder = BlockDecoder::default();
        for i in 0..snapshot.blocks.len() {
            decoder.decode(&snapshot, i)?;
        }
        Ok(snapshot)
    }
}

/// Builds a `Snapshot` from entries pushed in strictly ascending key order.
pub struct SnapshotWriter {
    data: Vec<u8>,
    blocks: Vec<BlockMeta>,
    len: usize,
    block_entries: usize,
    count: usize,
    first_key: String,
    last_key: String,
    shared: Vec<u8>,
    suffix_lens: Vec<u8>,
    suffixes: Vec<u8>,
    hashes: Vec<u8>,
    deflater: Compress,
}

impl Default for SnapshotWriter {
    fn default() -> SnapshotWriter {
        SnapshotWriter::new()
    }
}

impl SnapshotWriter {
    /// An empty writer.
    pub fn new() -> SnapshotWriter {
        SnapshotWriter::with_block_entries(BLOCK_ENTRIES)
    }

    /// An empty writer with blocks of `block_entries` entries (tests use tiny blocks).
    pub(crate) fn with_block_entries(block_entries: usize) -> SnapshotWriter {
        SnapshotWriter {
            data: Vec::new(),
            blocks: Vec::new(),
            len: 0,
            block_entries: block_entries.clamp(1, MAX_BLOCK_ENTRIES as usize),
            count: 0,
            first_key: String::new(),
            last_key: String::new(),
            shared: Vec::new(),
            suffix_lens: Vec::new(),
            suffixes: Vec::new(),
            hashes: Vec::new(),
            deflater: Compress::new(Compression::new(DEFLATE_LEVEL), false),
        }
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an entry; `key` must be strictly after the previous key (UTF-8 byte order).
    pub fn push(&mut self, key: &str, hash: u64) -> Result<(), StateError> {
        let shared = if self.len > 0 {
            if key <= self.last_key.as_str() {
                return Err(StateError::KeyOrder { key: key.to_string(), previous: self.last_key.clone() });
            }
            if self.count == 0 {
                0
            } else {
                common_prefix(self.last_key.as_bytes(), key.as_bytes())
            }
        } else {
            0
        };
        if self.count == 0 {
            self.first_key.clear();
            self.first_key.push_str(key);
        }
        put_varint(&mut self.shared, shared as u64);
        put_varint(&mut self.suffix_lens, (key.len() - shared) as u64);
        self.suffixes.extend_from_slice(&key.as_bytes()[shared..]);
        self.hashes.extend_from_slice(&hash.to_le_bytes());
        self.last_key.clear();
        self.last_key.push_str(key);
        self.count += 1;
        self.len += 1;
        if self.count == self.block_entries {
            self.flush_block();
        }
        Ok(())
    }

    /// The finished snapshot.
    pub fn finish(mut self) -> Snapshot {
        if self.count > 0 {
            self.flush_block();
        }
        Snapshot { data: self.data, blocks: self.blocks, len: self.len }
    }

    fn flush_block(&mut self) {
        let offset = self.data.len();
        // The three columns go through deflate as one stream; reuse `shared` as the buffer.
        let mut raw = std::mem::take(&mut self.shared);
        raw.extend_from_slice(&self.suffix_lens);
        raw.extend_from_slice(&self.suffixes);
        deflate_into(&mut self.deflater, &raw, &mut self.data);
        self.data.extend_from_slice(&self.hashes);
        self.blocks.push(BlockMeta {
            offset,
            byte_len: self.data.len() - offset,
            count: self.count,
            raw_len: raw.len(),
            first_key: std::mem::take(&mut self.first_key),
            last_key: self.last_key.clone(),
        });
        raw.clear();
        self.shared = raw;
        self.suffix_lens.clear();
        self.suffixes.clear();
        self.hashes.clear();
        self.count = 0;
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Raw-deflates `input` onto the end of `out`.
fn deflate_into(deflater: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    deflater.reset();
    let start = out.len();
    loop {
        out.reserve(input.len() / 4 + 256);
        let consumed = deflater.total_in() as usize;
        match deflater.compress_vec(&input[consumed.min(input.len())..], out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return,
            Ok(Status::Ok | Status::BufError) => {}
            Err(_) => break,
        }
    }
    // miniz_oxide does not fail on in-memory buffers; should it ever, write the column as
    // stored (uncompressed) deflate blocks, which every inflater reads.
    out.truncate(start);
    let mut chunks = input.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        out.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(chunk.len() as u16)).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Inflates exactly `raw_len` bytes from exactly `input`, into `out` (cleared first).
///
/// The buffer grows with the output actually produced, never to a length the index merely
/// claims, so a lying index cannot make decoding allocate much.
fn inflate_exact(inflater: &mut Decompress, input: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), String> {
    inflater.reset(false);
    out.clear();
    loop {
        // Up to one byte more than claimed, so a stream longer than claimed shows up.
        let room = (raw_len + 1 - out.len()).min(out.len().max(input.len() * 4).max(4096));
        out.reserve(room);
        let (read, written) = (inflater.total_in(), out.len());
        let consumed = (read as usize).min(input.len());
        let status = inflater.decompress_vec(&input[consumed..], out, FlushDecompress::None);
        match status {
            Ok(Status::StreamEnd) => break,
            Err(e) => return Err(format!("bad deflate data ({e})")),
            Ok(_) if out.len() > raw_len => {
                return Err(format!("inflates to more than the {raw_len} bytes the index says"))
            }
            Ok(_) if inflater.total_in() == read && out.len() == written && out.len() < out.capacity() => {
                return Err("deflate stream is cut short".to_string())
            }
            Ok(_) => {}
        }
    }
    if out.len() != raw_len {
        return Err(format!("inflates to {} bytes, the index says {raw_len}", out.len()));
    }
    if inflater.total_in() as usize != input.len() {
        return Err("has bytes after its deflate stream".to_string());
    }
    Ok(())
}

/// One block decoded: every key back to back, where each ends, and the hashes.
#[derive(Default)]
struct DecodedBlock {
    keys: String,
    ends: Vec<usize>,
    hashes: Vec<u64>,
}

/// Reusable buffers for decoding blocks.
struct BlockDecoder {
    inflater: Decompress,
    raw: Vec<u8>,
    keys: Vec<u8>,
    block: DecodedBlock,
}

impl Default for BlockDecoder {
    fn default() -> BlockDecoder {
        BlockDecoder {
            inflater: Decompress::new(false),
            raw: Vec::new(),
            keys: Vec::new(),
            block: DecodedBlock::default(),
        }
    }
}

impl BlockDecoder {
    /// Decodes block `index` into `self.block`, checking everything the index claims; on
    /// error `self.block` is left empty.
    fn decode(&mut self, snapshot: &Snapshot, index: usize) -> Result<(), StateError> {
        let decoded = self.decode_block(snapshot, index);
        if decoded.is_err() {
            self.block.ends.clear();
            self.block.hashes.clear();
            self.block.keys.clear();
        }
        decoded
    }

    fn decode_block(&mut self, snapshot: &Snapshot, index: usize) -> Result<(), StateError> {
        let bad = |what: &str| corrupt(format!("corrupt snapshot block {index}: {what}"));
        let Some(meta) = snapshot.blocks.get(index) else {
            return Err(corrupt(format!("snapshot block {index} does not exist")));
        };
        let Some(bytes) = snapshot.data.get(meta.offset..meta.offset + meta.byte_len) else {
            return Err(corrupt(format!("truncated snapshot block {index}")));
        };
        let (compressed, hashes) = bytes.split_at(meta.byte_len - meta.count * 8);
        inflate_exact(&mut self.inflater, compressed, meta.raw_len, &mut self.raw).map_err(|e| bad(&e))?;

        let mut reader = Reader { bytes: &self.raw, pos: 0 };
        let shared_start = reader.pos;
        for _ in 0..meta.count {
            reader.varint().ok_or_else(|| bad("prefix column cut short"))?;
        }
        let lens_start = reader.pos;
        for _ in 0..meta.count {
            reader.varint().ok_or_else(|| bad("suffix length column cut short"))?;
        }
        let suffix_start = reader.pos;
        let mut shared = Reader { bytes: &self.raw[..lens_start], pos: shared_start };
        let mut lens = Reader { bytes: &self.raw[..suffix_start], pos: lens_start };
        let mut suffixes = Reader { bytes: &self.raw, pos: suffix_start };

        self.keys.clear();
        self.block.ends.clear();
        self.block.hashes.clear();
        let mut previous_start = 0usize;
        for n in 0..meta.count {
            let shared = shared.varint().unwrap_or(u64::MAX);
            let suffix_len = lens.varint().unwrap_or(u64::MAX);
            let previous_len = self.keys.len() - previous_start;
            if (n == 0 && shared != 0) || shared > previous_len as u64 {
                return Err(bad("shared prefix longer than the previous key"));
            }
            let suffix = usize::try_from(suffix_len)
                .ok()
                .and_then(|l| suffixes.take(l))
                .ok_or_else(|| bad("suffix column cut short"))?;
            let start = self.keys.len();
            if n > 0 {
                let shared = shared as usize;
                if suffix <= &self.keys[previous_start + shared..start] {
                    return Err(bad("keys not in ascending order"));
                }
                self.keys.extend_from_within(previous_start..previous_start + shared);
            }
            self.keys.extend_from_slice(suffix);
            self.block.ends.push(self.keys.len());
            previous_start = start;
        }
        if suffixes.pos != self.raw.len() {
            return Err(bad("unexpected bytes after the last suffix"));
        }
        self.block.hashes.extend(
            hashes.chunks_exact(8).map(|h| u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])),
        );

        let mut keys = std::mem::take(&mut self.block.keys).into_bytes();
        std::mem::swap(&mut keys, &mut self.keys);
        self.block.keys = String::from_utf8(keys).map_err(|_| bad("key is not UTF-8"))?;
        if !self.block.ends.iter().all(|&end| self.block.keys.is_char_boundary(end)) {
            return Err(bad("key is not UTF-8"));
        }
        let first = &self.block.keys[..self.block.ends[0]];
        let last_start = if meta.count > 1 { self.block.ends[meta.count - 2] } else { 0 };
        let last = &self.block.keys[last_start..];
        if first != meta.first_key || last != meta.last_key {
            return Err(bad("keys do not match the index"));
        }
        Ok(())
    }
}

/// A position in a snapshot: the current entry, borrowed, and the way to the next.
pub struct Cursor<'a> {
    snapshot: &'a Snapshot,
    block: usize,
    pos: usize,
    decoder: BlockDecoder,
}

impl<'a> Cursor<'a> {
    fn new(snapshot: &'a Snapshot, block: usize) -> Cursor<'a> {
        let mut cursor = Cursor { snapshot, block, pos: 0, decoder: BlockDecoder::default() };
        cursor.load();
        cursor
    }

    fn load(&mut self) {
        self.pos = 0;
        self.decoder.block.ends.clear();
        if self.block < self.snapshot.blocks.len() {
            let loaded = self.decoder.decode(self.snapshot, self.block);
            // Snapshots are built by the writer or checked by `decode`, so this cannot fail;
            // should it, the cursor ends rather than inventing entries.
            debug_assert!(loaded.is_ok(), "snapshot block failed to decode: {loaded:?}");
            if loaded.is_err() {
                self.block = self.snapshot.blocks.len();
                self.decoder.block.ends.clear();
            }
        }
    }

    /// The entry under the cursor, or `None` past the end.
    pub fn current(&self) -> Option<(&str, u64)> {
        let block = &self.decoder.block;
        let end = *block.ends.get(self.pos)?;
        let start = if self.pos == 0 { 0 } else { block.ends[self.pos - 1] };
        Some((&block.keys[start..end], block.hashes[self.pos]))
    }

    /// Moves to the next entry.
    pub fn advance(&mut self) {
        if self.pos < self.decoder.block.ends.len() {
            self.pos += 1;
        }
        if self.pos >= self.decoder.block.ends.len() && self.block < self.snapshot.blocks.len() {
            self.block += 1;
            self.load();
        }
    }
}

/// Iterator over a snapshot's entries, one block decoded at a time.
pub struct Iter<'a> {
    cursor: Cursor<'a>,
}

impl Iterator for Iter<'_> {
    type Item = (String, u64);

    fn next(&mut self) -> Option<(String, u64)> {
        let (key, hash) = self.cursor.current().map(|(k, h)| (k.to_string(), h))?;
        self.cursor.advance();
        Some((key, hash))
    }
}

/// Counters and last-poll facts kept with the state, for READ.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// When the last poll finished (epoch ms), if any did.
    pub last_poll_ms: Option<u64>,
    /// What the last poll did (`ok`, `partial`, `error`, …).
    pub last_outcome: String,
    /// The last poll's error, when it failed (never holds a secret).
    pub last_error: Option<String>,
    /// Entries in the snapshot after the last poll.
    pub objects: u64,
    /// Events fired since the trigger was created.
    pub events_fired: u64,
    /// Polls that committed since the trigger was created.
    pub polls: u64,
    /// When the last change was seen (epoch ms), if any was.
    pub last_change_ms: Option<u64>,
    /// Deletes the last commit held back (a listing that shrank dramatically): the next poll
    /// lets them through if its listing agrees.
    pub held_deletes: u64,
    /// Deletes confirmed gone (HEAD 404) since the trigger was created.
    pub deletes_confirmed: u64,
    /// Deletes refuted (HEAD 200: the listing had omitted the object) since the trigger was created.
    pub deletes_refuted: u64,
}

/// Everything the core keeps for one trigger between polls.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// The format the state was read in; `encode` writes `LEGACY_FORMAT_VERSION`,
    /// `encode_sealed` `SEALED_FORMAT_VERSION` or, for a checkpoint of several ranges,
    /// `FORMAT_VERSION`.
    pub format_version: u32,
    /// Commit counter: one more on every committed poll.
    pub seq: u64,
    /// Every known key with its version hash.
    pub snapshot: Snapshot,
    /// Events detected but not yet delivered, in order.
    pub outbox: Vec<Value>,
    /// The key ranges a cut listing pass left to list, sorted and disjoint (its checkpoint:
    /// everything outside them is listed); empty when no listing is in progress. A sequential
    /// pass cut after key `k` leaves the one range after `k` (formats 1 and 2's `cursor`).
    pub resume: Vec<ListRange>,
    /// What the snapshot covers (e.g. the listing prefix); a change forces a silent re-baseline.
    pub scope: String,
    /// True once a first complete listing has been taken (it fires no events).
    pub baselined: bool,
    /// Counters for READ.
    pub stats: Stats,
    /// A log source's cursor and facts; `None` for a snapshot source.
    pub log: Option<LogState>,
    /// The version string of each snapshot key whose hash it is, for a source that keeps
    /// versions (`Lister::keeps_versions`); `None` for the others, whose stored state is then
    /// byte for byte what it was before this field existed.
    pub versions: Option<BTreeMap<String, String>>,
    /// How many times the state store wrote this state (every write, deliveries included): a
    /// state older than one already written is a rollback (`store` checks).
    pub writes: u64,
    /// A snapshot source's newest re-baseline: when, why, and what it diffed against (a log
    /// source keeps its own in `log`). Kept until the next one; READ shows it until the user
    /// acknowledges it with an UPDATE.
    pub rebaselined: Option<Rebaseline>,
    /// When the newest listing that covered the whole source (from no cursor to the end)
    /// started (epoch ms): a reconcile honours push markers written since.
    pub whole_listing_started_ms: Option<u64>,
}

/// What the core keeps for a log source: kept in the header under `log`, an optional field
/// that a snapshot source's state never writes, so those states keep their bytes and states
/// written before it existed still decode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogState {
    /// Read after this cursor next (kept verbatim); `None`: from the start of the log.
    pub cursor: Option<String>,
    /// Records read since the feed was created.
    pub records_read: u64,
    /// Why the source refuses the stored cursor, while it does: polls read nothing (no
    /// record is skipped) until the user allows a re-baseline (`onCursorRejected=now`).
    pub cursor_rejected: Option<String>,
    /// The newest time the cursor was set anew without reading up to it.
    pub rebaselined: Option<Rebaseline>,
}

/// A state set anew: when, why, and (for a log source) from which cursor. READ shows it: what
/// happened in between may not have been reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rebaseline {
    /// When (epoch ms).
    pub at_ms: u64,
    /// Why, in words a user can act on.
    pub reason: String,
    /// The cursor it replaced, if there was one.
    pub previous_cursor: Option<String>,
    /// What caused it, one word: `missing`, `rejected` (not authenticated, damaged or rolled
    /// back), `scope` (UPDATE changed what the feed watches), `cursor` (the source refused the
    /// cursor); empty in records written before causes were kept.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cause: String,
}

/// The JSON header: every `State` field but the snapshot (read side).
#[derive(Deserialize)]
struct Header {
    seq: u64,
    outbox: Vec<Value>,
    cursor: Option<String>,
    /// Version 3 only: the ranges left to list, read by `ranges_of` (as a `Value`: typed
    /// pairs would add a deserializer of their own to every action binary).
    #[serde(default)]
    resume: Option<Value>,
    scope: String,
    baselined: bool,
    stats: Stats,
    #[serde(default)]
    log: Option<LogState>,
    /// Absent in states written before it existed and in those of sources that keep no versions.
    #[serde(default)]
    versions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    writes: u64,
    #[serde(default)]
    rebaselined: Option<Rebaseline>,
    #[serde(default, rename = "wholeListingStartedMs")]
    whole_listing_started_ms: Option<u64>,
}

/// The JSON header, write side: borrows, so encoding does not copy the outbox.
#[derive(Serialize)]
struct HeaderRef<'a> {
    seq: u64,
    outbox: &'a [Value],
    cursor: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: &'a Option<Vec<(&'a Option<String>, &'a Option<String>)>>,
    scope: &'a str,
    baselined: bool,
    stats: &'a Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: &'a Option<LogState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    versions: &'a Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "is_zero")]
    writes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rebaselined: &'a Option<Rebaseline>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "wholeListingStartedMs")]
    whole_listing_started_ms: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The HMAC domain of a state object.
const STATE_DOMAIN: &str = "state";

impl State {
    /// A fresh state for `scope`: empty snapshot, not baselined.
    pub fn new(scope: impl Into<String>) -> State {
        State {
            // What `encode_sealed` writes for it (no checkpoint).
            format_version: SEALED_FORMAT_VERSION,
            seq: 0,
            snapshot: Snapshot::default(),
            outbox: Vec::new(),
            resume: Vec::new(),
            scope: scope.into(),
            baselined: false,
            stats: Stats::default(),
            log: None,
            versions: None,
            writes: 0,
            rebaselined: None,
            whole_listing_started_ms: None,
        }
    }

    /// The unauthenticated stored form, format version 1 (see the module doc): for feeds
    /// without a `stateKey`. A checkpoint of several ranges is written as the one cursor
    /// before them all.
    pub fn encode(&self) -> Vec<u8> {
        let cursor = self.resume.first().and_then(|first| first.start_after.clone());
        let mut out = self.body(LEGACY_FORMAT_VERSION, self.writes, &cursor, &None);
        let mut crc = Crc::new();
        crc.update(&out);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out
    }

    /// The authenticated stored form, as the store's write number `writes`: format version 2,
    /// or 3 for a checkpoint of several ranges.
    pub fn encode_sealed(&self, seal: &Seal, writes: u64) -> Vec<u8> {
        let (version, cursor, resume) = match self.resume.as_slice() {
            [] => (SEALED_FORMAT_VERSION, None, None),
            [ListRange { start_after: Some(after), end_before: None }] => {
                (SEALED_FORMAT_VERSION, Some(after.clone()), None)
            }
            ranges => (FORMAT_VERSION, None, Some(ranges.iter().map(|r| (&r.start_after, &r.end_before)).collect())),
        };
        let mut out = self.body(version, writes, &cursor, &resume);
        let tag = seal.tag(STATE_DOMAIN, &out);
        out.extend_from_slice(&tag);
        out
    }

    /// Everything but the trailer, with the checkpoint as `cursor` (formats 1 and 2) or
    /// `resume` (format 3).
    fn body(
        &self,
        version: u32,
        writes: u64,
        cursor: &Option<String>,
        resume: &Option<Vec<(&Option<String>, &Option<String>)>>,
    ) -> Vec<u8> {
        let header = HeaderRef {
            seq: self.seq,
            outbox: &self.outbox,
            cursor,
            resume,
            scope: &self.scope,
            baselined: self.baselined,
            stats: &self.stats,
            log: &self.log,
            versions: &self.versions,
            writes,
            rebaselined: &self.rebaselined,
            whole_listing_started_ms: self.whole_listing_started_ms,
        };
        // Serializing plain data into a Vec cannot fail; an empty header would fail decoding.
        let json = serde_json::to_vec(&header).unwrap_or_default();
        let mut compressed = Vec::new();
        deflate_into(&mut Compress::new(Compression::default(), false), &json, &mut compressed);
        let snapshot = self.snapshot.encode();

        let mut out = Vec::with_capacity(compressed.len() + snapshot.len() + 40 + MAC_LEN);
        out.extend_from_slice(MAGIC);
        put_varint(&mut out, u64::from(version));
        put_varint(&mut out, json.len() as u64);
        put_bytes(&mut out, &compressed);
        put_bytes(&mut out, &snapshot);
        out
    }

    /// The format version of stored bytes (after the magic), or why there is none.
    fn version_of(bytes: &[u8]) -> Result<u64, StateError> {
        match bytes.get(..MAGIC.len()) {
            Some(magic) if magic == MAGIC => {}
            None if !bytes.is_empty() && MAGIC.starts_with(bytes) => {
                return Err(corrupt(format!("truncated state object ({} bytes)", bytes.len())))
            }
            _ => return Err(StateError::BadMagic),
        }
        let mut reader = Reader { bytes, pos: MAGIC.len() };
        let version = reader.varint().ok_or_else(|| corrupt("truncated state object (no format version)"))?;
        if version == 0 || version > u64::from(FORMAT_VERSION) {
            return Err(StateError::UnsupportedVersion { found: version });
        }
        Ok(version)
    }

    /// Reads the unauthenticated stored form (format version 1: feeds without a `stateKey`).
    /// Never panics: truncated, random or hostile bytes give a `StateError`, and allocations
    /// are capped by the input's size.
    pub fn decode(bytes: &[u8]) -> Result<State, StateError> {
        if State::version_of(bytes)? != u64::from(LEGACY_FORMAT_VERSION) {
            return Err(StateError::Unauthenticated(
                "sealed with a stateKey, which this feed's config does not hold".to_string(),
            ));
        }
        let (state, body_len) = State::parse(bytes)?;
        let stored = match bytes.len() - body_len {
            4 => u32::from_le_bytes([bytes[body_len], bytes[body_len + 1], bytes[body_len + 2], bytes[body_len + 3]]),
            n if n < 4 => return Err(corrupt("truncated state object (checksum cut short)")),
            n => return Err(corrupt(format!("{} unexpected bytes after the state object", n - 4))),
        };
        let mut crc = Crc::new();
        crc.update(&bytes[..body_len]);
        if crc.sum() != stored {
            return Err(corrupt("checksum mismatch (the state object is damaged)"));
        }
        Ok(State { format_version: LEGACY_FORMAT_VERSION, ..state })
    }

    /// Reads the authenticated stored form (format version 2 or 3) sealed by `seal`: the HMAC
    /// is checked before anything else is parsed. Never panics, whatever the input.
    pub fn decode_sealed(bytes: &[u8], seal: &Seal) -> Result<State, StateError> {
        if State::version_of(bytes)? == u64::from(LEGACY_FORMAT_VERSION) {
            return Err(StateError::Unauthenticated(
                "written without authentication (format 1, before this feed had a stateKey); anyone who can \
                 write the store could have written it"
                    .to_string(),
            ));
        }
        let Some(body_len) = bytes.len().checked_sub(MAC_LEN).filter(|&n| n > MAGIC.len()) else {
            return Err(corrupt("truncated state object (authentication tag cut short)"));
        };
        if !seal.verify(STATE_DOMAIN, &bytes[..body_len], &bytes[body_len..]) {
            return Err(StateError::Unauthenticated(
                "the HMAC does not match: written by someone without this feed's stateKey, for another trigger, \
                 or damaged"
                    .to_string(),
            ));
        }
        let (state, parsed) = State::parse(&bytes[..body_len])?;
        if parsed != body_len {
            return Err(corrupt(format!("{} unexpected bytes after the state object", body_len - parsed)));
        }
        Ok(state)
    }

    /// Reads the stored form without checking its trailer (the dry run's view of a sealed
    /// state when no key is given). Never for anything that fires.
    pub fn decode_unverified(bytes: &[u8]) -> Result<State, StateError> {
        match State::version_of(bytes)? {
            1 => State::decode(bytes),
            _ => {
                let body = bytes.get(..bytes.len().saturating_sub(MAC_LEN)).unwrap_or_default();
                State::parse(body).map(|(state, _)| state)
            }
        }
    }

    /// Parses magic, version, header and snapshot; returns the state and where its body ends.
    fn parse(bytes: &[u8]) -> Result<(State, usize), StateError> {
        let version = State::version_of(bytes)?;
        let mut reader = Reader { bytes, pos: MAGIC.len() };
        reader.varint();
        let truncated_header = || corrupt("truncated state header");
        let raw_len = reader.varint().ok_or_else(truncated_header)?;
        let compressed = reader.bytes().ok_or_else(truncated_header)?;
        if raw_len > (compressed.len() as u64).saturating_mul(MAX_INFLATE_RATIO).saturating_add(64) {
            return Err(corrupt("state header claims an impossible length"));
        }
        let mut json = Vec::new();
        inflate_exact(&mut Decompress::new(false), compressed, raw_len as usize, &mut json)
            .map_err(|e| corrupt(format!("state header {e}")))?;
        let header: Header =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("state header is not valid JSON ({e})")))?;
        let resume = match (version, header.cursor, header.resume) {
            (1 | 2, cursor, None) => {
                cursor.map(|c| vec![ListRange { start_after: Some(c), end_before: None }]).unwrap_or_default()
            }
            (3, None, Some(ranges)) => ranges_of(&ranges)?,
            _ => return Err(corrupt(format!("state header: format version {version} with the wrong listing cursor"))),
        };
        let resume = check_resume(resume)?;
        let section = reader.pos;
        let Some(snapshot) = reader.bytes() else {
            // Name the block where the cut is, when the part that is there shows it.
            let rest = bytes.get(section..).unwrap_or_default();
            let rest = Reader { bytes: rest, pos: 0 }.tail_after_varint();
            return Err(Snapshot::decode(rest).err().unwrap_or_else(|| corrupt("truncated snapshot")));
        };
        let snapshot = Snapshot::decode(snapshot)?;
        let state = State {
            format_version: version as u32,
            seq: header.seq,
            snapshot,
            outbox: header.outbox,
            resume,
            scope: header.scope,
            baselined: header.baselined,
            stats: header.stats,
            log: header.log,
            versions: header.versions,
            writes: header.writes,
            rebaselined: header.rebaselined,
            whole_listing_started_ms: header.whole_listing_started_ms,
        };
        Ok((state, reader.pos))
    }
}

/// The ranges of a version-3 header's `resume`: `[[after, before], …]`, each bound a key or null.
fn ranges_of(resume: &Value) -> Result<Vec<ListRange>, StateError> {
    let bound = |v: &Value| match v {
        Value::Null => Some(None),
        Value::String(key) => Some(Some(key.clone())),
        _ => None,
    };
    let bad = || corrupt("state header: resume is not a list of [after, before] pairs");
    let mut ranges = Vec::new();
    for item in resume.as_array().ok_or_else(bad)? {
        let Some([after, before]) = item.as_array().map(Vec::as_slice) else { return Err(bad()) };
        let (Some(start_after), Some(end_before)) = (bound(after), bound(before)) else { return Err(bad()) };
        ranges.push(ListRange { start_after, end_before });
    }
    Ok(ranges)
}

/// Checks that stored resume ranges are what a pass leaves: each range not inverted, the
/// ranges sorted and disjoint (only the first open below, only the last open above).
fn check_resume(ranges: Vec<ListRange>) -> Result<Vec<ListRange>, StateError> {
    let bad = |why: &str| Err(corrupt(format!("state header: resume ranges {why}")));
    for range in &ranges {
        if let (Some(after), Some(before)) = (&range.start_after, &range.end_before) {
            if after >= before {
                return bad("hold an inverted range");
            }
        }
    }
    for pair in ranges.windows(2) {
        match (&pair[0].end_before, &pair[1].start_after) {
            // Disjoint: no key is below the first's end and above the second's start.
            // (Nothing lies strictly between `start` and `start` + NUL.)
            (Some(end), Some(start)) if end <= start || right_after(end, start) => {}
            _ => return bad("overlap or are out of order"),
        }
    }
    Ok(ranges)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads varints and length-prefixed byte strings; `None` when the input runs out.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// What follows a varint at the current position (empty when there is none).
    fn tail_after_varint(mut self) -> &'a [u8] {
        match self.varint() {
            Some(_) => &self.bytes[self.pos..],
            None => &[],
        }
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(slice)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }

    /// A length-prefixed string: `None` when cut short, `Some(None)` when not UTF-8.
    fn string(&mut self) -> Option<Option<String>> {
        self.bytes().map(|b| String::from_utf8(b.to_vec()).ok())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// splitmix64: a tiny deterministic PRNG, so the properties need no extra dependency.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Measures wall and on-CPU time of `f`, for figures printed by the size tests (the
    /// machine may be busy, so CPU time is the fairer figure; Linux only, else wall only).
    pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, String) {
        fn cpu() -> Option<std::time::Duration> {
            let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
            Some(std::time::Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
        }
        let (wall, before) = (std::time::Instant::now(), cpu());
        let value = f();
        let (wall, after) = (wall.elapsed(), cpu());
        let figure = match (before, after) {
            (Some(b), Some(a)) => format!("{:.0?} cpu ({wall:.0?} wall)", a.saturating_sub(b)),
            _ => format!("{wall:.0?} wall"),
        };
        (value, figure)
    }

    fn build(entries: &[(String, u64)], block_entries: usize) -> Snapshot {
        let mut writer = SnapshotWriter::with_block_entries(block_entries);
        for (key, hash) in entries {
            writer.push(key, *hash).unwrap();
        }
        writer.finish()
    }

    fn random_entries(rng: &mut Rng, n: usize) -> Vec<(String, u64)> {
        const ALPHABET: [&str; 5] = ["a", "b", "/", "é", "😀"];
        let mut keys: Vec<String> =
            (0..n).map(|_| (0..rng.below(7)).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().map(|k| (k, rng.next())).collect()
    }

    fn sample_state(rng: &mut Rng) -> State {
        let entries = random_entries(rng, 300);
        State {
            format_version: LEGACY_FORMAT_VERSION,
            seq: 42,
            snapshot: build(&entries, 7),
            outbox: vec![serde_json::json!({"id": "e1", "data": {"key": "a/b"}}), serde_json::json!([1, 2])],
            resume: vec![ListRange { start_after: Some("a/é".to_string()), end_before: None }],
            scope: "prefix=logs/".to_string(),
            baselined: true,
            stats: Stats {
                last_poll_ms: Some(1_700_000_000_000),
                last_outcome: "partial".to_string(),
                last_error: Some("s3: timeout".to_string()),
                objects: entries.len() as u64,
                events_fired: 9,
                polls: 3,
                last_change_ms: None,
                held_deletes: 4,
                deletes_confirmed: 5,
                deletes_refuted: 1,
            },
            log: None,
            versions: None,
            writes: 0,
            rebaselined: None,
            whole_listing_started_ms: None,
        }
    }

    /// The JSON header of stored state bytes.
    fn header_json(bytes: &[u8]) -> Value {
        let mut reader = Reader { bytes, pos: MAGIC.len() };
        reader.varint().unwrap();
        let raw_len = reader.varint().unwrap();
        let mut json = Vec::new();
        inflate_exact(&mut Decompress::new(false), reader.bytes().unwrap(), raw_len as usize, &mut json).unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn a_snapshot_state_writes_no_log_field_and_a_log_state_round_trips() {
        let mut rng = Rng(7);
        let state = sample_state(&mut rng);
        let bytes = state.encode();
        // States of snapshot sources keep the exact header they had before log sources existed.
        assert!(header_json(&bytes).get("log").is_none());
        assert_eq!(State::decode(&bytes).unwrap().log, None);

        let mut log = State::new("couchdb://db");
        log.format_version = LEGACY_FORMAT_VERSION;
        log.log = Some(LogState {
            cursor: Some("12-g1AAAA".to_string()),
            records_read: 3,
            cursor_rejected: Some("since: malformed".to_string()),
            rebaselined: Some(Rebaseline { at_ms: 5, reason: "why".to_string(), ..Rebaseline::default() }),
        });
        assert_eq!(State::decode(&log.encode()).unwrap(), log);
    }

    #[test]
    fn version_hash_is_fnv1a_64() {
        // Published FNV-1a 64 test vectors: the hash is part of the stored format.
        assert_eq!(version_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(version_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(version_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn snapshot_round_trips_through_blocks_iter_and_encoding() {
        let mut rng = Rng(1);
        for block_entries in [1, 2, 3, 5, 64, BLOCK_ENTRIES] {
            let entries = random_entries(&mut rng, 400);
            let snapshot = build(&entries, block_entries);
            assert_eq!(snapshot.len(), entries.len());
            assert_eq!(snapshot.iter().collect::<Vec<_>>(), entries);
            let decoded = Snapshot::decode(&snapshot.encode()).unwrap();
            assert_eq!(decoded.iter().collect::<Vec<_>>(), entries);
            assert_eq!(decoded.blocks.len(), snapshot.blocks.len());
            // iter_from: every key, and keys between and around the stored ones.
            let mut probes: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
            probes.extend(["", "a", "a\0", "b/", "z", "é😀", "\u{10ffff}"].map(String::from));
            for after in probes {
                let expected: Vec<_> = entries.iter().filter(|(k, _)| k.as_str() > after.as_str()).cloned().collect();
                assert_eq!(decoded.iter_from(&after).collect::<Vec<_>>(), expected, "after {after:?}");
            }
        }
    }

    #[test]
    fn empty_snapshot_and_empty_key_work() {
        let empty = SnapshotWriter::new().finish();
        assert!(empty.is_empty());
        assert_eq!(empty.iter().count(), 0);
        assert_eq!(Snapshot::decode(&empty.encode()).unwrap().len(), 0);
        let entries = vec![(String::new(), 7), ("a".to_string(), 8)];
        let snapshot = build(&entries, 1);
        assert_eq!(Snapshot::decode(&snapshot.encode()).unwrap().iter().collect::<Vec<_>>(), entries);
        assert_eq!(snapshot.iter_from("").collect::<Vec<_>>(), entries[1..]);
    }

    #[test]
    fn writer_rejects_keys_out_of_order() {
        let mut writer = SnapshotWriter::new();
        writer.push("b", 1).unwrap();
        let expected = StateError::KeyOrder { key: "a".to_string(), previous: "b".to_string() };
        assert_eq!(writer.push("a", 2), Err(expected));
        assert_eq!(
            writer.push("b", 2).unwrap_err().to_string(),
            "state: snapshot key \"b\" is not after the previous key \"b\""
        );
        // Byte order, not char order: U+FFFF (EF BF BF) sorts before U+10000 (F0 …).
        writer.push("\u{ffff}", 3).unwrap();
        writer.push("\u{10000}", 4).unwrap();
        assert_eq!(writer.finish().len(), 3);
    }

    #[test]
    fn concat_joins_disjoint_parts_and_refuses_overlaps() {
        let mut rng = Rng(2);
        let entries = random_entries(&mut rng, 500);
        let (a, rest) = entries.split_at(100);
        let (b, c) = rest.split_at(1);
        let parts = vec![build(a, 3), build(&[], 3), build(b, 3), build(c, 4096)];
        let joined = Snapshot::concat(parts).unwrap();
        assert_eq!(joined.iter().collect::<Vec<_>>(), entries);
        assert_eq!(Snapshot::decode(&joined.encode()).unwrap(), build(&entries, 10));
        let overlap = Snapshot::concat(vec![build(&entries[..10], 3), build(&entries[9..], 3)]);
        assert_eq!(
            overlap.unwrap_err(),
            StateError::KeyOrder { key: entries[9].0.clone(), previous: entries[9].0.clone() }
        );
    }

    #[test]
    fn state_round_trips() {
        let state = sample_state(&mut Rng(3));
        let decoded = State::decode(&state.encode()).unwrap();
        assert_eq!(decoded, state);
        let mut fresh = State::new("prefix=");
        fresh.format_version = LEGACY_FORMAT_VERSION;
        assert_eq!(State::decode(&fresh.encode()).unwrap(), fresh);
    }

    fn seal(key: &str, trigger: &str) -> Seal {
        Seal::new(&Secret::new(key), trigger)
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_state_round_trips_with_its_write_number_and_records() {
        let mut state = sample_state(&mut Rng(8));
        state.format_version = SEALED_FORMAT_VERSION;
        state.rebaselined =
            Some(Rebaseline { at_ms: 9, reason: "r".into(), cause: "rejected".into(), ..Rebaseline::default() });
        state.whole_listing_started_ms = Some(77);
        let seal = seal(KEY, "ns/t");
        let bytes = state.encode_sealed(&seal, 12);
        let decoded = State::decode_sealed(&bytes, &seal).unwrap();
        assert_eq!(decoded, State { writes: 12, ..state.clone() });
        // The trailer is the HMAC of everything before it, and nothing else.
        let body = &bytes[..bytes.len() - MAC_LEN];
        assert_eq!(&bytes[body.len()..], &seal.tag("state", body));
        assert_eq!(State::decode_unverified(&bytes).unwrap(), decoded);
    }

    #[test]
    fn the_seal_is_hmac_sha256_over_the_length_prefixed_domain_trigger_and_bytes() {
        // Part of the stored format: recomputed here with another HMAC implementation.
        use hmac::{Hmac, Mac};
        let (domain, trigger, message) = ("state", "ns/t", b"the bytes".as_slice());
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(KEY.as_bytes()).unwrap();
        for part in [domain.as_bytes(), trigger.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(message);
        let expected: [u8; MAC_LEN] = mac.finalize().into_bytes().into();
        assert_eq!(seal(KEY, trigger).tag(domain, message), expected);
    }

    #[test]
    fn a_sealed_state_verifies_only_with_its_key_for_its_trigger() {
        let state = sample_state(&mut Rng(9));
        let bytes = state.encode_sealed(&seal(KEY, "ns/t"), 1);
        let unauthenticated = |result: Result<State, StateError>| match result {
            Err(StateError::Unauthenticated(why)) => why,
            other => panic!("expected an authentication failure, got {other:?}"),
        };
        let other_key = KEY.replace('0', "1");
        assert!(unauthenticated(State::decode_sealed(&bytes, &seal(&other_key, "ns/t"))).contains("HMAC"));
        // Another trigger's state, even under the same key (a copy of another feed's object).
        unauthenticated(State::decode_sealed(&bytes, &seal(KEY, "ns/t2")));
        unauthenticated(State::decode_sealed(&bytes, &seal(KEY, "ns2/t")));
        // A legacy reader does not take a sealed state, nor a sealed reader a legacy one.
        assert!(unauthenticated(State::decode(&bytes)).contains("stateKey"));
        assert!(unauthenticated(State::decode_sealed(&state.encode(), &seal(KEY, "ns/t"))).contains("format 1"));
        // A tag made in another domain (a lease's, a marker's) does not seal a state.
        let mut spliced = bytes[..bytes.len() - MAC_LEN].to_vec();
        spliced.extend_from_slice(&seal(KEY, "ns/t").tag("lease", &spliced));
        unauthenticated(State::decode_sealed(&spliced, &seal(KEY, "ns/t")));
        // Nor does another state's tag.
        let other = State::new("x").encode_sealed(&seal(KEY, "ns/t"), 1);
        let mut spliced = bytes[..bytes.len() - MAC_LEN].to_vec();
        spliced.extend_from_slice(&other[other.len() - MAC_LEN..]);
        unauthenticated(State::decode_sealed(&spliced, &seal(KEY, "ns/t")));
        // Truncated tags are refused below 16 bytes whatever they hold.
        assert!(!seal(KEY, "ns/t").verify("state", b"m", &[]));
        assert!(!seal(KEY, "ns/t").verify("state", b"m", &seal(KEY, "ns/t").tag("state", b"m")[..15]));
        assert!(seal(KEY, "ns/t").verify("state", b"m", &seal(KEY, "ns/t").tag("state", b"m")[..16]));
    }

    #[test]
    fn any_change_to_a_sealed_state_is_refused_and_nothing_panics() {
        let mut rng = Rng(10);
        let state = sample_state(&mut rng);
        let s = seal(KEY, "ns/t");
        let bytes = state.encode_sealed(&s, 3);
        // Every byte, one random bit flipped: the forger's edit of an outbox entry, a count, a tag.
        for i in 0..bytes.len() {
            let mut forged = bytes.clone();
            forged[i] ^= 1 << rng.below(8);
            assert!(State::decode_sealed(&forged, &s).is_err(), "a flip at byte {i} verified");
        }
        for cut in 0..bytes.len() {
            assert!(State::decode_sealed(&bytes[..cut], &s).is_err(), "cut at {cut} verified");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(State::decode_sealed(&longer, &s).is_err());
        // A forger who knows the format rebuilds the state with an outbox of their own and a
        // checksum, or a tag of their own: neither verifies.
        let mut forged_state = state.clone();
        forged_state.outbox = vec![serde_json::json!({"type": "evil", "__ow_headers": {"authorization": "x"}})];
        assert!(State::decode_sealed(&forged_state.encode(), &s).is_err());
        let forged = forged_state.encode_sealed(&seal("a key the forger made up, 32+ chars", "ns/t"), 99);
        assert!(State::decode_sealed(&forged, &s).is_err());
        for round in 0..3000 {
            let len = rng.below(400);
            let mut random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if round % 2 == 0 && random.len() > 9 {
                random[..9].copy_from_slice(b"OWFEED\0S\x02");
            }
            let _ = State::decode_sealed(&random, &s);
            let _ = State::decode_unverified(&random);
        }
    }

    /// A state object as the release before `versions` wrote it: the header JSON without it.
    fn old_state_bytes(header: &str, snapshot: &Snapshot) -> Vec<u8> {
        let mut compressed = Vec::new();
        deflate_into(&mut Compress::new(Compression::default(), false), header.as_bytes(), &mut compressed);
        let mut out = MAGIC.to_vec();
        put_varint(&mut out, 1);
        put_varint(&mut out, header.len() as u64);
        put_bytes(&mut out, &compressed);
        put_bytes(&mut out, &snapshot.encode());
        let mut crc = Crc::new();
        crc.update(&out);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out
    }

    #[test]
    fn states_written_before_versions_existed_still_decode() {
        let snapshot = build(&[("a".to_string(), version_hash("e1"))], 7);
        let header = r#"{"seq":3,"outbox":[],"cursor":null,"scope":"s","baselined":true,"stats":{"objects":1}}"#;
        let state = State::decode(&old_state_bytes(header, &snapshot)).unwrap();
        assert_eq!((state.seq, state.versions, state.snapshot), (3, None, snapshot));
    }

    #[test]
    fn versions_round_trip_and_cost_nothing_when_not_kept() {
        let mut state = sample_state(&mut Rng(4));
        let without = state.encode();
        // A source that keeps no versions writes exactly the old format (S3 states keep their size).
        #[derive(Serialize)]
        struct OldHeader<'a> {
            seq: u64,
            outbox: &'a [Value],
            cursor: &'a Option<String>,
            scope: &'a str,
            baselined: bool,
            stats: &'a Stats,
        }
        let cursor = &state.resume[0].start_after;
        let (outbox, scope, stats) = (&state.outbox, &state.scope, &state.stats);
        let old = OldHeader { seq: state.seq, outbox, cursor, scope, baselined: state.baselined, stats };
        let old_header = serde_json::to_string(&old).unwrap();
        assert_eq!(without, old_state_bytes(&old_header, &state.snapshot));
        state.versions = Some(BTreeMap::from([("https://a/x".to_string(), "\"v1\"".to_string())]));
        let decoded = State::decode(&state.encode()).unwrap();
        assert_eq!(decoded, state);
        assert!(decoded.encode().len() > without.len());
    }

    fn range(after: Option<&str>, before: Option<&str>) -> ListRange {
        ListRange { start_after: after.map(String::from), end_before: before.map(String::from) }
    }

    /// A state object of format `version` with `cursor` and `resume` in its header as given:
    /// sealed with `KEY` for `ns/t` (formats 2 and 3) or with a checksum (format 1).
    fn state_with_header(version: u64, cursor: &str, resume: Option<&str>) -> Result<State, StateError> {
        let resume = resume.map(|r| format!(r#","resume":{r}"#)).unwrap_or_default();
        let header =
            format!(r#"{{"seq":1,"outbox":[],"cursor":{cursor}{resume},"scope":"s","baselined":true,"stats":{{}}}}"#);
        let mut bytes = old_state_bytes(&header, &Snapshot::default());
        bytes[MAGIC.len()] = version as u8;
        bytes.truncate(bytes.len() - 4);
        if version == 1 {
            let mut crc = Crc::new();
            crc.update(&bytes);
            bytes.extend_from_slice(&crc.sum().to_le_bytes());
            return State::decode(&bytes);
        }
        let seal = seal(KEY, "ns/t");
        let tag = seal.tag("state", &bytes);
        bytes.extend_from_slice(&tag);
        State::decode_sealed(&bytes, &seal)
    }

    #[test]
    fn a_sealed_checkpoint_of_several_ranges_is_version_3_and_the_others_stay_version_2() {
        let mut state = sample_state(&mut Rng(8));
        let seal = seal(KEY, "ns/t");
        for (resume, version) in [
            (vec![], 2),
            (vec![range(Some("k"), None)], 2),
            (vec![range(None, Some("b\0"))], 3),
            (vec![range(Some("a"), Some("c"))], 3),
            (vec![range(None, Some("b\0")), range(Some("b"), Some("é")), range(Some("😀"), None)], 3),
        ] {
            state.resume = resume;
            state.format_version = version;
            let bytes = state.encode_sealed(&seal, 5);
            assert_eq!(bytes[MAGIC.len()], version as u8, "{:?}", state.resume);
            assert_eq!(State::decode_sealed(&bytes, &seal).unwrap(), State { writes: 5, ..state.clone() });
            assert_eq!(State::decode_unverified(&bytes).unwrap(), State { writes: 5, ..state.clone() });
            let header = header_json(&bytes);
            assert_eq!(header.get("resume").is_some(), version == 3, "{header}");
            if version == 3 {
                assert_eq!(header["cursor"], Value::Null);
            }
            // A version-2 state is byte for byte what the first sealed build wrote.
            if version == 2 {
                let cursor = state.resume.first().and_then(|r| r.start_after.clone());
                let first_build = format!(
                    r#"{{"seq":42,"outbox":{},"cursor":{},"scope":{},"baselined":true,"stats":{},"writes":5}}"#,
                    serde_json::to_string(&state.outbox).unwrap(),
                    serde_json::to_string(&cursor).unwrap(),
                    serde_json::to_string(&state.scope).unwrap(),
                    serde_json::to_string(&state.stats).unwrap()
                );
                assert_eq!(header_json(&bytes), serde_json::from_str::<Value>(&first_build).unwrap());
            }
        }
    }

    #[test]
    fn an_unsealed_state_keeps_one_cursor_before_every_range_left() {
        // Format 1 (feeds without a key) has one cursor: a checkpoint of several ranges is
        // written as the cursor before all of them (everything from there listed again).
        let mut state = sample_state(&mut Rng(11));
        for (resume, kept) in [
            (vec![], vec![]),
            (vec![range(Some("k"), None)], vec![range(Some("k"), None)]),
            (vec![range(Some("a"), Some("c"))], vec![range(Some("a"), None)]),
            (vec![range(Some("b"), Some("é")), range(Some("😀"), None)], vec![range(Some("b"), None)]),
            // Open below: no cursor, the next pass lists the whole key space.
            (vec![range(None, Some("b\0")), range(Some("c"), None)], vec![]),
        ] {
            state.resume = resume.clone();
            let bytes = state.encode();
            assert_eq!(bytes[MAGIC.len()], 1, "{resume:?}");
            assert!(header_json(&bytes).get("resume").is_none());
            let decoded = State::decode(&bytes).unwrap();
            assert_eq!(decoded, State { resume: kept.clone(), ..state.clone() }, "{resume:?}");
            // What is left to list covers what was left: progress may be lost, keys never.
            for r in &resume {
                let covered = kept.iter().any(|k| {
                    k.end_before.is_none()
                        && k.start_after.as_deref().is_none_or(|a| r.start_after.as_deref() >= Some(a))
                });
                assert!(covered || kept.is_empty(), "{r:?} not in {kept:?}");
            }
        }
    }

    #[test]
    fn resume_ranges_that_a_pass_cannot_leave_are_corrupt() {
        for version in [1, 2] {
            assert_eq!(state_with_header(version, r#""k""#, None).unwrap().resume, vec![range(Some("k"), None)]);
            assert_eq!(state_with_header(version, "null", None).unwrap().resume, vec![]);
        }
        let fine = r#"[[null,"b\u0000"],["b","d"],["e",null]]"#;
        assert_eq!(state_with_header(3, "null", Some(fine)).unwrap().resume.len(), 3);
        for (version, cursor, resume, why) in [
            (1, r#""k""#, Some(fine), "wrong listing cursor"),
            (2, r#""k""#, Some(fine), "wrong listing cursor"),
            (2, "null", Some(fine), "wrong listing cursor"),
            (3, r#""k""#, Some(fine), "wrong listing cursor"),
            (3, "null", None, "wrong listing cursor"),
            (3, "null", Some(r#"[["d","b"]]"#), "inverted"),
            (3, "null", Some(r#"[["a","c"],["b",null]]"#), "overlap"),
            (3, "null", Some(r#"[["c","d"],["a","b"]]"#), "overlap"),
            (3, "null", Some(r#"[["a",null],["c",null]]"#), "overlap"),
            (3, "null", Some(r#"[["a","c"],[null,"z"]]"#), "overlap"),
            (3, "null", Some(r#"[["a","c","d"]]"#), "not a list of [after, before] pairs"),
            (3, "null", Some(r#"[["a",1]]"#), "not a list of [after, before] pairs"),
            (3, "null", Some(r#"{"a":"c"}"#), "not a list of [after, before] pairs"),
        ] {
            let err = state_with_header(version, cursor, resume).unwrap_err().to_string();
            assert!(err.contains(why), "{version} {cursor} {resume:?}: {err}");
        }
        // Format 3 is sealed: a feed without a key does not read it, a sealed one checks it.
        let mut state = sample_state(&mut Rng(12));
        state.resume = vec![range(None, Some("b\0")), range(Some("c"), None)];
        let bytes = state.encode_sealed(&seal(KEY, "ns/t"), 1);
        assert!(matches!(State::decode(&bytes), Err(StateError::Unauthenticated(_))));
        assert!(matches!(State::decode_sealed(&bytes, &seal(KEY, "ns/u")), Err(StateError::Unauthenticated(_))));
    }

    #[test]
    fn decode_errors_say_what_is_wrong() {
        let check = |bytes: &[u8], expected: &str| {
            assert_eq!(State::decode(bytes).unwrap_err().to_string(), expected, "input {bytes:?}");
        };
        check(b"", "state: not an owfeed state object (bad magic)");
        check(b"{\"seq\": 1}", "state: not an owfeed state object (bad magic)");
        check(b"OWFEED", "state: truncated state object (6 bytes)");
        check(b"OWFEED\0S\x04", "state: format version 4 is not supported (this build reads versions 1 to 3)");
        for sealed in [b"OWFEED\0S\x02", b"OWFEED\0S\x03"] {
            check(sealed, "state: not authenticated: sealed with a stateKey, which this feed's config does not hold");
        }
        let mut good = State::new("s").encode();
        let last = good.len() - 1;
        good[last] ^= 1;
        check(&good, "state: checksum mismatch (the state object is damaged)");

        // A state whose snapshot has 5 blocks of 2, cut in the middle of block 3.
        let mut state = State::new("s");
        state.snapshot = build(&(0..10).map(|i| (format!("k{i:02}"), i)).collect::<Vec<_>>(), 2);
        let bytes = state.encode();
        let blob = state.snapshot.encode();
        let block3 = &state.snapshot.blocks[3];
        let cut = bytes.len() - 4 - blob.len() + (blob.len() - state.snapshot.data.len()) + block3.offset + 3;
        check(&bytes[..cut], "state: truncated snapshot block 3");
    }

    #[test]
    fn decoding_truncated_mutated_or_random_bytes_never_panics() {
        let mut rng = Rng(4);
        let state = sample_state(&mut rng);
        let bytes = state.encode();
        for cut in 0..bytes.len() {
            assert!(State::decode(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
        let blob = state.snapshot.encode();
        for cut in 0..blob.len() {
            assert!(Snapshot::decode(&blob[..cut]).is_err(), "snapshot cut at {cut} decoded");
        }
        // Flipped bytes in a snapshot (which has no checksum of its own) must be caught by
        // the block checks or give a snapshot that still iterates in order.
        for _ in 0..3000 {
            let mut damaged = blob.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(damaged.len());
                damaged[i] ^= 1 << rng.below(8);
            }
            if let Ok(snapshot) = Snapshot::decode(&damaged) {
                let keys: Vec<String> = snapshot.iter().map(|(k, _)| k).collect();
                assert_eq!(keys.len(), snapshot.len());
                assert!(keys.windows(2).all(|w| w[0] < w[1]));
            }
            let mut damaged = bytes.clone();
            let i = rng.below(damaged.len());
            damaged[i] ^= 1 << rng.below(8);
            assert!(State::decode(&damaged).is_err());
        }
        for round in 0..3000 {
            let len = rng.below(300);
            let mut random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if round % 2 == 0 && random.len() > 9 {
                // Past the magic and version, so the deeper parsers see random input too.
                random[..9].copy_from_slice(b"OWFEED\0S\x01");
            }
            let _ = State::decode(&random);
            let _ = Snapshot::decode(&random);
        }
        // Huge claimed lengths are refused without allocating them.
        let mut huge = b"OWFEED\0S\x01".to_vec();
        put_varint(&mut huge, u64::MAX >> 1);
        put_varint(&mut huge, 3);
        huge.extend_from_slice(&[1, 2, 3]);
        assert!(State::decode(&huge).is_err());
        let mut huge = Vec::new();
        put_varint(&mut huge, 1);
        for value in [10_000, u64::MAX >> 2, 80_000] {
            put_varint(&mut huge, value);
        }
        assert!(Snapshot::decode(&huge).is_err());
    }

    /// Bytes per object of a state holding `keys` (each with a random version hash).
    fn bytes_per_object(keys: &mut [String], rng: &mut Rng) -> f64 {
        keys.sort();
        let hashes: Vec<u64> = keys.iter().map(|_| rng.next()).collect();
        let (bytes, encode) = timed(|| {
            let mut writer = SnapshotWriter::new();
            for (key, hash) in keys.iter().zip(&hashes) {
                writer.push(key, *hash).unwrap();
            }
            let mut state = State::new("prefix=");
            state.snapshot = writer.finish();
            state.encode()
        });
        let (decoded, decode) = timed(|| State::decode(&bytes).unwrap());
        let (count, iterate) = timed(|| {
            let mut cursor = decoded.snapshot.cursor();
            let mut count = 0;
            while cursor.current().is_some() {
                count += 1;
                cursor.advance();
            }
            count
        });
        assert_eq!(count, keys.len());
        // What sealing adds: the HMAC-SHA256 over the same bytes, on write and on read.
        // Each measured after a warm-up run, so neither pays the first page faults.
        let seal = Seal::new(&Secret::new("k".repeat(64)), "ns/t");
        fn warm<T>(f: impl Fn() -> T) -> (T, String) {
            drop(f());
            timed(f)
        }
        let (sealed, seal_encode) = warm(|| decoded.encode_sealed(&seal, 1));
        let (_, reencode) = warm(|| decoded.encode());
        let (_, redecode) = warm(|| State::decode(&bytes).unwrap());
        let (_, seal_decode) = warm(|| State::decode_sealed(&sealed, &seal).unwrap());
        let per_object = bytes.len() as f64 / keys.len() as f64;
        eprintln!(
            "{} keys like {:?}: {per_object:.2} bytes/object; build+encode {encode}, decode {decode}, iterate {iterate}; \
             again: encode {reencode}, sealed {seal_encode}; decode {redecode}, sealed {seal_decode}",
            keys.len(),
            keys[keys.len() / 2]
        );
        per_object
    }

    #[test]
    fn state_size_per_object() {
        // 1M objects in release builds (`cargo test --release`); fewer in debug to stay quick.
        let n = if cfg!(debug_assertions) { 100_000 } else { 1_000_000 };
        let mut rng = Rng(5);
        let mut logs: Vec<String> = (0..n)
            .map(|i| {
                let (day, host, part) = (i / 20_000, i / 400 % 50, i % 400);
                format!("logs/2024/{:02}/{:02}/host-{host:03}/part-{part:06}.json.gz", 1 + day / 28, 1 + day % 28)
            })
            .collect();
        let regular = bytes_per_object(&mut logs, &mut rng);
        let mut data: Vec<String> = (0..n).map(|i| format!("data/2024/01/15/file-{i:06}.json")).collect();
        let sequential = bytes_per_object(&mut data, &mut rng);
        let mut uuids: Vec<String> = (0..n)
            .map(|_| {
                let (a, b) = (rng.next(), rng.next());
                format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xfff,
                    b >> 48,
                    b & 0xffff_ffff_ffff
                )
            })
            .collect();
        let random = bytes_per_object(&mut uuids, &mut rng);
        // Loose sanity bounds: 8 bytes of hash plus a little key.
        assert!(regular < 10.0 && sequential < 10.0, "regular keys: {regular:.2} and {sequential:.2} bytes/object");
        assert!(random < 32.0, "uuid keys: {random:.2} bytes/object");
    }
}
