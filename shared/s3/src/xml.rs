//! Parsing of S3 XML bodies: `ListBucketResult` pages and `<Error>` documents.
//!
//! Parsing is strict on purpose: a body that does not parse, misses a required element, is cut
//! short, or claims more pages without a continuation token is an error, never an empty page,
//! because a poller that sees an empty page would report every object as deleted. This module
//! does no I/O.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::encode::decode_form;

/// One object of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The object key, decoded when the listing was url-encoded.
    pub key: String,
    /// The ETag without its surrounding quotes; `None` when the server omits it (s3s-fs does).
    pub etag: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// `LastModified` exactly as the server sent it.
    pub last_modified: Option<String>,
    /// Storage class, when sent.
    pub storage_class: Option<String>,
}

/// One page of a ListObjectsV2 listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// Objects of this page, in the server's order.
    pub objects: Vec<Object>,
    /// Common prefixes, when a delimiter was sent (decoded like keys).
    pub common_prefixes: Vec<String>,
    /// True when more pages follow; then `next_continuation_token` is set.
    pub is_truncated: bool,
    /// The opaque token for the next page.
    pub next_continuation_token: Option<String>,
    /// `KeyCount` as sent, or the number of entries on the page when the server omits it.
    pub key_count: u64,
}

/// The fields of an S3 `<Error>` document that callers act on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorBody {
    /// The `Code` element, e.g. `NoSuchBucket`.
    pub code: Option<String>,
    /// The `Message` element.
    pub message: Option<String>,
    /// The `Region` element that AWS adds to `AuthorizationHeaderMalformed`.
    pub region: Option<String>,
    /// The `Endpoint` element of `PermanentRedirect` / `TemporaryRedirect`: where to send it.
    pub endpoint: Option<String>,
    /// The `ServerTime` element of `RequestTimeTooSkewed`.
    pub server_time: Option<String>,
}

/// Why a listing body was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListParseError {
    /// The body is not a complete, well-formed `ListBucketResult`; the text says what is wrong.
    Malformed(String),
    /// The body is an `<Error>` document (S3 may send one with status 200).
    ErrorDocument(ErrorBody),
}

/// A parsed element: its local name (namespace prefix and attributes dropped), its own text
/// and its child elements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct XmlElement {
    /// The local name.
    pub name: String,
    /// Its text, exactly as sent (whitespace between child elements included).
    pub text: String,
    /// Its child elements, in document order.
    pub children: Vec<XmlElement>,
}

impl XmlElement {
    /// An element with this name and text and no children.
    pub fn leaf(name: &str, text: &str) -> XmlElement {
        XmlElement { name: name.to_string(), text: text.to_string(), children: Vec::new() }
    }

    /// The first child with this name.
    pub fn child(&self, name: &str) -> Option<&XmlElement> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child with this name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The text of the first element with this name below this one (depth first).
    pub fn find_text(&self, name: &str) -> Option<&str> {
        self.children.iter().find_map(|c| if c.name == name { Some(c.text.as_str()) } else { c.find_text(name) })
    }

    /// The element as XML: a leaf's text escaped, an element with children without its own
    /// (whitespace) text; `root_attrs` are written on this element only (e.g. an `xmlns`).
    pub fn to_xml(&self, root_attrs: &str) -> String {
        let mut out = String::new();
        self.write(&mut out, root_attrs);
        out
    }

    fn write(&self, out: &mut String, attrs: &str) {
        out.push('<');
        out.push_str(&self.name);
        if !attrs.is_empty() {
            out.push(' ');
            out.push_str(attrs);
        }
        out.push('>');
        if self.children.is_empty() {
            out.push_str(&quick_xml::escape::escape(self.text.as_str()));
        } else {
            for child in &self.children {
                child.write(out, "");
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }

    #[cfg(test)]
    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a XmlElement> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses a whole XML document into its root element (see [`XmlElement`]), resolving entities
/// and character references; a body that is not one complete document is an error.
pub fn parse_xml(body: &[u8]) -> Result<XmlElement, String> {
    parse_document(body)
}

/// Parses a whole document into its root element, resolving entities and character references.
fn parse_document(body: &[u8]) -> Result<XmlElement, String> {
    let mut tree = Tree::default();
    walk(body, &mut tree)?;
    tree.root.ok_or_else(|| "XML body is empty".to_string())
}

/// What `walk` hands on of a document, in order: elements opened (by local name) and closed,
/// and the text of the innermost open one in pieces (entities and references resolved).
trait Sink {
    fn start(&mut self, name: &[u8]);
    fn end(&mut self);
    fn text(&mut self, piece: &str);
}

/// Reads a whole document into `sink`, with the checks of a well-formed, complete document:
/// one root element, nothing but whitespace outside it, no unmatched or missing end tag. One
/// reader for every document kind, so each kind costs only its sink.
fn walk(body: &[u8], sink: &mut dyn Sink) -> Result<(), String> {
    let mut reader = Reader::from_reader(body);
    // Keys may start or end with spaces, so text is kept exactly.
    reader.config_mut().trim_text(false);
    // The open elements' names back to back (for the error of a cut body), where each starts.
    let mut names: Vec<u8> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let (mut rooted, mut closed) = (false, false);
    loop {
        let event = reader.read_event().map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
        let piece = match event {
            Event::Start(_) | Event::Empty(_) if closed => {
                return Err("XML has content after the root element".to_string());
            }
            Event::Start(start) => {
                let name = start.local_name();
                sink.start(name.as_ref());
                open.push(names.len());
                names.extend_from_slice(name.as_ref());
                rooted = true;
                continue;
            }
            Event::Empty(start) => {
                sink.start(start.local_name().as_ref());
                sink.end();
                (rooted, closed) = (true, open.is_empty());
                continue;
            }
            Event::End(_) => {
                let start = open.pop().ok_or("XML has an unmatched end tag")?;
                names.truncate(start);
                sink.end();
                closed = open.is_empty();
                continue;
            }
            Event::Text(text) => text.decode().map_err(|e| format!("XML text is not UTF-8: {e}"))?,
            Event::CData(data) => data.decode().map_err(|e| format!("XML CDATA is not UTF-8: {e}"))?,
            Event::GeneralRef(reference) => {
                match reference.resolve_char_ref().map_err(|e| format!("XML character reference: {e}"))? {
                    Some(c) => c.to_string().into(),
                    None => {
                        let name = reference.decode().map_err(|e| format!("XML entity is not UTF-8: {e}"))?;
                        quick_xml::escape::resolve_xml_entity(&name)
                            .ok_or_else(|| format!("XML has an unknown entity '&{name};'"))?
                            .into()
                    }
                }
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => continue,
            Event::Eof => break,
        };
        if !open.is_empty() {
            sink.text(&piece);
        } else if !piece.trim().is_empty() {
            return Err("XML has text outside the root element".to_string());
        }
    }
    if let Some(start) = open.last() {
        return Err(format!("XML body ends inside <{}> (cut short)", String::from_utf8_lossy(&names[*start..])));
    }
    if !rooted {
        return Err("XML body is empty".to_string());
    }
    Ok(())
}

/// A `Sink` building the tree of `XmlElement`s.
#[derive(Default)]
struct Tree {
    open: Vec<XmlElement>,
    root: Option<XmlElement>,
}

impl Sink for Tree {
    fn start(&mut self, name: &[u8]) {
        let name = String::from_utf8_lossy(name).into_owned();
        self.open.push(XmlElement { name, ..XmlElement::default() });
    }

    fn end(&mut self) {
        let Some(element) = self.open.pop() else { return };
        match self.open.last_mut() {
            Some(parent) => parent.children.push(element),
            None => self.root = Some(element),
        }
    }

    fn text(&mut self, piece: &str) {
        if let Some(element) = self.open.last_mut() {
            element.text.push_str(piece);
        }
    }
}

/// Parses an `<Error>` document; `None` when the body is not one (HEAD responses have no body).
pub fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    let root = parse_document(body).ok()?;
    (root.name == "Error").then(|| error_body(&root))
}

fn error_body(root: &XmlElement) -> ErrorBody {
    let text = |name| root.child_text(name).map(str::to_string);
    ErrorBody {
        code: text("Code"),
        message: text("Message"),
        region: text("Region"),
        endpoint: text("Endpoint"),
        server_time: text("ServerTime"),
    }
}

/// Parses a ListObjectsV2 response body.
///
/// `url_encoding_requested` says whether the request carried `encoding-type=url`; keys are then
/// decoded form-style when the response echoes `EncodingType` `url`, and left as sent otherwise.
///
/// It reads the XML events as they come and keeps only the fields of a listing (a page of 1000
/// keys would otherwise be a tree of thousands of elements, most of the poll's parsing time),
/// with exactly the checks and answers of reading the whole tree (`parse_xml`): a test holds
/// the two to the same results.
pub fn parse_list_objects_v2(body: &[u8], url_encoding_requested: bool) -> Result<ListPage, ListParseError> {
    let listing = read_listing(body).map_err(ListParseError::Malformed)?;
    let root = listing.root.as_deref().unwrap_or_default();
    if root == "Error" {
        // An error document (S3 may send one with status 200): small, read as a tree.
        let root = parse_document(body).map_err(ListParseError::Malformed)?;
        return Err(ListParseError::ErrorDocument(error_body(&root)));
    }
    if root != "ListBucketResult" {
        return Err(ListParseError::Malformed(format!("expected <ListBucketResult>, got <{root}>")));
    }
    listing.page(url_encoding_requested).map_err(ListParseError::Malformed)
}

/// The fields of a `ListBucketResult` as read, before checks and decoding: for each field the
/// first element of its name, as `XmlElement::child_text` would find it.
#[derive(Default)]
struct RawListing {
    root: Option<String>,
    encoding_type: Option<String>,
    is_truncated: Option<String>,
    next_continuation_token: Option<String>,
    key_count: Option<String>,
    contents: Vec<RawObject>,
    common_prefixes: Vec<Option<String>>,
}

#[derive(Default)]
struct RawObject {
    key: Option<String>,
    size: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    storage_class: Option<String>,
}

/// Which field an open element's text goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Root,
    EncodingType,
    IsTruncated,
    NextContinuationToken,
    KeyCount,
    Contents,
    CommonPrefixes,
    Key,
    Size,
    ETag,
    LastModified,
    StorageClass,
    Prefix,
    /// An element whose text nobody reads (its text is still checked).
    Ignored,
}

impl RawListing {
    /// The field `slot` stands for, when it is still unset (the first element of a name wins).
    fn field(&mut self, slot: Slot) -> Option<&mut Option<String>> {
        self.field_open(slot).filter(|f| f.is_none())
    }

    /// The field `slot` stands for, set or not (`None` for a slot that is no field).
    fn field_open(&mut self, slot: Slot) -> Option<&mut Option<String>> {
        fn object(l: &mut RawListing) -> Option<&mut RawObject> {
            l.contents.last_mut()
        }
        let field = match slot {
            Slot::EncodingType => &mut self.encoding_type,
            Slot::IsTruncated => &mut self.is_truncated,
            Slot::NextContinuationToken => &mut self.next_continuation_token,
            Slot::KeyCount => &mut self.key_count,
            Slot::Key => &mut object(self)?.key,
            Slot::Size => &mut object(self)?.size,
            Slot::ETag => &mut object(self)?.etag,
            Slot::LastModified => &mut object(self)?.last_modified,
            Slot::StorageClass => &mut object(self)?.storage_class,
            Slot::Prefix => self.common_prefixes.last_mut()?,
            _ => return None,
        };
        Some(field)
    }

    /// The slot of an element named `name` opened inside `parent`; starts a Contents or a
    /// CommonPrefixes entry, and a field's (empty) text.
    fn open(&mut self, parent: Option<Slot>, name: &[u8]) -> Slot {
        let slot = match (parent, name) {
            (None, _) => Slot::Root,
            (Some(Slot::Root), b"EncodingType") => Slot::EncodingType,
            (Some(Slot::Root), b"IsTruncated") => Slot::IsTruncated,
            (Some(Slot::Root), b"NextContinuationToken") => Slot::NextContinuationToken,
            (Some(Slot::Root), b"KeyCount") => Slot::KeyCount,
            (Some(Slot::Root), b"Contents") => {
                self.contents.push(RawObject::default());
                return Slot::Contents;
            }
            (Some(Slot::Root), b"CommonPrefixes") => {
                self.common_prefixes.push(None);
                return Slot::CommonPrefixes;
            }
            (Some(Slot::Contents), b"Key") => Slot::Key,
            (Some(Slot::Contents), b"Size") => Slot::Size,
            (Some(Slot::Contents), b"ETag") => Slot::ETag,
            (Some(Slot::Contents), b"LastModified") => Slot::LastModified,
            (Some(Slot::Contents), b"StorageClass") => Slot::StorageClass,
            (Some(Slot::CommonPrefixes), b"Prefix") => Slot::Prefix,
            _ => return Slot::Ignored,
        };
        match self.field(slot) {
            Some(field) => {
                *field = Some(String::new());
                slot
            }
            // Not the first element of its name: read like any other.
            None if slot == Slot::Root => slot,
            None => Slot::Ignored,
        }
    }

    /// Applies `list_page`'s checks and decoding.
    fn page(self, url_encoding_requested: bool) -> Result<ListPage, String> {
        let encoded = url_encoding_requested && self.encoding_type.is_some_and(|t| t.eq_ignore_ascii_case("url"));
        let decode = |value: String| if encoded { decode_form(&value) } else { Ok(value) };

        let is_truncated = match self.is_truncated.as_deref().map(str::trim) {
            Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(format!("IsTruncated is '{other}', expected true or false")),
            None => return Err("ListBucketResult has no IsTruncated".to_string()),
        };
        let next_continuation_token = self.next_continuation_token.filter(|t| !t.is_empty());
        if is_truncated && next_continuation_token.is_none() {
            return Err("IsTruncated is true but NextContinuationToken is missing".to_string());
        }

        let mut objects = Vec::with_capacity(self.contents.len());
        for raw in self.contents {
            let key = decode(raw.key.ok_or("a Contents entry has no Key")?)?;
            let size = raw.size.ok_or_else(|| format!("Contents for key '{key}' has no Size"))?;
            let size =
                size.trim().parse::<u64>().map_err(|_| format!("Size '{size}' of key '{key}' is not a number"))?;
            let etag = raw.etag.map(|e| match strip_quotes(&e) {
                stripped if stripped.len() == e.len() => e,
                stripped => stripped.to_string(),
            });
            objects.push(Object {
                key,
                etag,
                size,
                last_modified: raw.last_modified,
                storage_class: raw.storage_class,
            });
        }

        let mut common_prefixes = Vec::with_capacity(self.common_prefixes.len());
        for prefix in self.common_prefixes {
            common_prefixes.push(decode(prefix.ok_or("a CommonPrefixes entry has no Prefix")?)?);
        }

        let key_count = match self.key_count {
            Some(count) => count.trim().parse::<u64>().map_err(|_| format!("KeyCount '{count}' is not a number"))?,
            None => (objects.len() + common_prefixes.len()) as u64,
        };
        Ok(ListPage { objects, common_prefixes, is_truncated, next_continuation_token, key_count })
    }
}

/// Reads a document into a `RawListing`, with `parse_document`'s checks and errors.
fn read_listing(body: &[u8]) -> Result<RawListing, String> {
    let mut sink = ListingSink { listing: RawListing::default(), open: Vec::new() };
    walk(body, &mut sink)?;
    Ok(sink.listing)
}

/// A `Sink` keeping a listing's fields: the slots of the open elements.
struct ListingSink {
    listing: RawListing,
    open: Vec<Slot>,
}

impl Sink for ListingSink {
    fn start(&mut self, name: &[u8]) {
        if self.open.is_empty() {
            self.listing.root = Some(String::from_utf8_lossy(name).into_owned());
        }
        let slot = self.listing.open(self.open.last().copied(), name);
        self.open.push(slot);
    }

    fn end(&mut self) {
        self.open.pop();
    }

    fn text(&mut self, piece: &str) {
        if let Some(Some(field)) = self.open.last().and_then(|slot| self.listing.field_open(*slot)) {
            field.push_str(piece);
        }
    }
}

/// Removes one pair of surrounding double quotes from an ETag, if present.
pub fn strip_quotes(etag: &str) -> &str {
    let etag = etag.trim();
    etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser before streaming, reading the whole tree: the oracle of the streaming one.
    ///
    /// `url_encoding_requested` says whether the request carried `encoding-type=url`; keys are then
    /// decoded form-style when the response echoes `EncodingType` `url`, and left as sent otherwise.
    fn parse_list_objects_v2_tree(body: &[u8], url_encoding_requested: bool) -> Result<ListPage, ListParseError> {
        let root = parse_document(body).map_err(ListParseError::Malformed)?;
        if root.name == "Error" {
            return Err(ListParseError::ErrorDocument(error_body(&root)));
        }
        if root.name != "ListBucketResult" {
            return Err(ListParseError::Malformed(format!("expected <ListBucketResult>, got <{}>", root.name)));
        }
        list_page(&root, url_encoding_requested).map_err(ListParseError::Malformed)
    }

    fn list_page(root: &XmlElement, url_encoding_requested: bool) -> Result<ListPage, String> {
        let encoded =
            url_encoding_requested && root.child_text("EncodingType").is_some_and(|t| t.eq_ignore_ascii_case("url"));
        let decode = |value: &str| if encoded { decode_form(value) } else { Ok(value.to_string()) };

        let is_truncated = match root.child_text("IsTruncated").map(str::trim) {
            Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(format!("IsTruncated is '{other}', expected true or false")),
            None => return Err("ListBucketResult has no IsTruncated".to_string()),
        };
        let next_continuation_token =
            root.child_text("NextContinuationToken").filter(|t| !t.is_empty()).map(str::to_string);
        if is_truncated && next_continuation_token.is_none() {
            return Err("IsTruncated is true but NextContinuationToken is missing".to_string());
        }

        let mut objects = Vec::new();
        for contents in root.children_named("Contents") {
            let key = contents.child_text("Key").ok_or("a Contents entry has no Key")?;
            let key = decode(key)?;
            let size = contents.child_text("Size").ok_or_else(|| format!("Contents for key '{key}' has no Size"))?;
            let size =
                size.trim().parse::<u64>().map_err(|_| format!("Size '{size}' of key '{key}' is not a number"))?;
            let etag = contents.child_text("ETag").map(|e| strip_quotes(e).to_string());
            let text = |name| contents.child_text(name).map(str::to_string);
            objects.push(Object {
                key,
                etag,
                size,
                last_modified: text("LastModified"),
                storage_class: text("StorageClass"),
            });
        }

        let mut common_prefixes = Vec::new();
        for prefixes in root.children_named("CommonPrefixes") {
            let prefix = prefixes.child_text("Prefix").ok_or("a CommonPrefixes entry has no Prefix")?;
            common_prefixes.push(decode(prefix)?);
        }

        let key_count = match root.child_text("KeyCount") {
            Some(count) => count.trim().parse::<u64>().map_err(|_| format!("KeyCount '{count}' is not a number"))?,
            None => (objects.len() + common_prefixes.len()) as u64,
        };
        Ok(ListPage { objects, common_prefixes, is_truncated, next_continuation_token, key_count })
    }

    const NS: &str = r#"xmlns="http://s3.amazonaws.com/doc/2006-03-01/""#;

    fn listing(encoding: &str, truncated: &str, contents: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult {NS}><Name>b</Name><Prefix></Prefix>{encoding}<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>{truncated}{contents}</ListBucketResult>"#
        )
    }

    fn object(key: &str, etag: Option<&str>) -> Object {
        Object {
            key: key.to_string(),
            etag: etag.map(str::to_string),
            size: 3,
            last_modified: Some("2024-01-02T03:04:05.000Z".to_string()),
            storage_class: Some("STANDARD".to_string()),
        }
    }

    fn contents(key: &str, etag: &str) -> String {
        format!(
            "<Contents><Key>{key}</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>{etag}</ETag>\
             <Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>"
        )
    }

    #[track_caller]
    fn check(body: &str, url_requested: bool, expected: Result<Vec<Object>, &str>) {
        let got = parse_list_objects_v2(body.as_bytes(), url_requested);
        match (got, expected) {
            (Ok(page), Ok(objects)) => assert_eq!(page.objects, objects, "body: {body}"),
            (Err(ListParseError::Malformed(got)), Err(expected)) => {
                assert!(got.contains(expected), "error {got:?} does not contain {expected:?}; body: {body}")
            }
            (got, expected) => panic!("got {got:?}, expected {expected:?}; body: {body}"),
        }
    }

    const NOT_TRUNCATED: &str = "<IsTruncated>false</IsTruncated>";
    const URL: &str = "<EncodingType>url</EncodingType>";

    #[test]
    fn entities_and_quoted_etags() {
        check(
            &listing("", NOT_TRUNCATED, &contents("z&amp;&lt;&gt;.txt", "&quot;abc&quot;")),
            false,
            Ok(vec![object("z&<>.txt", Some("abc"))]),
        );
        check(
            &listing("", NOT_TRUNCATED, &contents("a&#x20;b&#65;", "\"abc\"")),
            false,
            Ok(vec![object("a bA", Some("abc"))]),
        );
        check(
            &listing("", NOT_TRUNCATED, &contents("<![CDATA[c<d]]>", "abc-2")),
            false,
            Ok(vec![object("c<d", Some("abc-2"))]),
        );
        check(
            &listing("", NOT_TRUNCATED, &contents(" spaced ", "\"e\"")),
            false,
            Ok(vec![object(" spaced ", Some("e"))]),
        );
        check(&listing("", NOT_TRUNCATED, &contents("x", "\"e\"")), false, Ok(vec![object("x", Some("e"))]));
    }

    #[test]
    fn url_decoding_of_keys() {
        check(
            &listing(URL, NOT_TRUNCATED, &contents("a+b%2Bc%20d", "\"e\"")),
            true,
            Ok(vec![object("a b+c d", Some("e"))]),
        );
        check(
            &listing(URL, NOT_TRUNCATED, &contents("%E6%97%A5%25", "\"e\"")),
            true,
            Ok(vec![object("日%", Some("e"))]),
        );
        // Not requested (s3s-fs echoes the element without encoding): keys stay as sent.
        check(&listing(URL, NOT_TRUNCATED, &contents("a+b%20", "\"e\"")), false, Ok(vec![object("a+b%20", Some("e"))]));
        // Requested but not echoed: the server did not encode.
        check(&listing("", NOT_TRUNCATED, &contents("a+b", "\"e\"")), true, Ok(vec![object("a+b", Some("e"))]));
        check(&listing(URL, NOT_TRUNCATED, &contents("%ZZ", "\"e\"")), true, Err("bad percent-escape"));
    }

    #[test]
    fn optional_elements_may_be_missing() {
        let bare = "<Contents><Key>k</Key><Size>7</Size></Contents>";
        let page = parse_list_objects_v2(listing("", NOT_TRUNCATED, bare).as_bytes(), false).unwrap();
        let expected = Object { key: "k".into(), etag: None, size: 7, last_modified: None, storage_class: None };
        assert_eq!(page.objects, vec![expected]);
        assert_eq!(page.key_count, 1);
        let empty = format!("<ListBucketResult {NS}><Name>b</Name>{NOT_TRUNCATED}</ListBucketResult>");
        let page = parse_list_objects_v2(empty.as_bytes(), true).unwrap();
        assert_eq!(page, ListPage::default());
    }

    #[test]
    fn pages_and_prefixes() {
        let body = format!(
            "<ListBucketResult {NS}>{URL}<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\
             <CommonPrefixes><Prefix>dir+a/</Prefix></CommonPrefixes><KeyCount>2</KeyCount>{}</ListBucketResult>",
            contents("k", "\"e\"")
        );
        let page = parse_list_objects_v2(body.as_bytes(), true).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="));
        assert_eq!(page.common_prefixes, vec!["dir a/".to_string()]);
        assert_eq!(page.key_count, 2);
    }

    #[test]
    fn broken_bodies_are_errors_not_empty_pages() {
        check(&listing("", "", ""), false, Err("no IsTruncated"));
        check(&listing("", "<IsTruncated>maybe</IsTruncated>", ""), false, Err("IsTruncated is 'maybe'"));
        check(&listing("", "<IsTruncated>true</IsTruncated>", ""), false, Err("NextContinuationToken is missing"));
        check(&listing("", NOT_TRUNCATED, "<Contents><Size>1</Size></Contents>"), false, Err("has no Key"));
        check(&listing("", NOT_TRUNCATED, "<Contents><Key>k</Key></Contents>"), false, Err("has no Size"));
        check(
            &listing("", NOT_TRUNCATED, "<Contents><Key>k</Key><Size>-1</Size></Contents>"),
            false,
            Err("not a number"),
        );
        let full = listing("", NOT_TRUNCATED, &contents("k", "\"e\""));
        let after_contents = full.find("</Contents>").unwrap() + "</Contents>".len();
        check(&full[..after_contents], false, Err("ends inside <ListBucketResult> (cut short)"));
        check(&full[..full.len() - 40], false, Err("XML error"));
        check(&full[..full.len() - 8], false, Err("XML error"));
        check("", false, Err("empty"));
        check("not xml at all", false, Err("text outside the root"));
        check("<ListAllMyBucketsResult/>", false, Err("expected <ListBucketResult>"));
        check(&listing("", NOT_TRUNCATED, &contents("a&bogus;", "e")), false, Err("unknown entity"));
        check(&format!("{full}<Extra/>"), false, Err("after the root"));
    }

    #[test]
    fn error_document_with_status_200() {
        let body = "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>";
        let expected = ErrorBody {
            code: Some("InternalError".into()),
            message: Some("We encountered an internal error.".into()),
            region: None,
            endpoint: None,
            server_time: None,
        };
        assert_eq!(parse_list_objects_v2(body.as_bytes(), true), Err(ListParseError::ErrorDocument(expected.clone())));
        assert_eq!(parse_error_body(body.as_bytes()), Some(expected));
        assert_eq!(parse_error_body(b""), None);
        assert_eq!(parse_error_body(b"<ListBucketResult/>"), None);
        let malformed = b"<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>";
        assert_eq!(parse_error_body(malformed).and_then(|e| e.region).as_deref(), Some("eu-west-1"));
    }

    /// Random listing documents, whole, cut or damaged: the streaming parser answers exactly
    /// what reading the whole tree answers.
    #[test]
    fn streaming_parse_equals_the_tree_parse_on_any_document() {
        let mut x: u64 = 0x5eed;
        let mut rnd = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        // Mostly good values, a few bad ones.
        const KEYS: [&str; 10] = [
            "k",
            " sp ",
            "a%20b+c",
            "%E6%97%A5",
            "&amp;&lt;",
            "&#65;&#x42;",
            "<![CDATA[c<d]]>",
            "x/y",
            "%ZZ",
            "&bogus;",
        ];
        const VALUES: [&str; 8] = ["12", "0", " 7 ", "\"etag\"", "&quot;q&quot;", "2024-01-02T03:04:05.000Z", "", "-1"];
        const FIELDS: [&str; 5] = ["Key", "Size", "ETag", "LastModified", "StorageClass"];
        for round in 0..4000 {
            let text = |rnd: &mut dyn FnMut(usize) -> usize, f: &str| match f {
                "Size" => ["12", "0", " 7 ", "-1"][if rnd(10) == 0 { 3 } else { rnd(3) }],
                "Key" => {
                    let n = if rnd(20) == 0 { 10 } else { 8 };
                    KEYS[rnd(n)]
                }
                _ => {
                    let n = if rnd(10) == 0 { 8 } else { 6 };
                    VALUES[rnd(n)]
                }
            };
            let mut doc = String::new();
            if rnd(3) == 0 {
                doc.push_str("<?xml version=\"1.0\"?>\n");
            }
            let root = ["ListBucketResult", "ListBucketResult", "ListBucketResult", "Error", "Other"][rnd(5)];
            doc.push_str(&format!("<{root} {NS}>"));
            for _ in 0..rnd(12) {
                match rnd(12) {
                    0 | 1 => doc.push_str(&format!(
                        "<IsTruncated>{}</IsTruncated>",
                        ["false", "false", "true", " true ", "maybe"][rnd(5)]
                    )),
                    2 => doc
                        .push_str(&format!("<NextContinuationToken>{}</NextContinuationToken>", text(&mut rnd, "Key"))),
                    3 => doc.push_str(&format!("<KeyCount>{}</KeyCount>", ["3", " 1 ", "x"][rnd(3)])),
                    4 => doc.push_str(&format!("<EncodingType>{}</EncodingType>", ["url", "URL", "none"][rnd(3)])),
                    5..=8 => {
                        doc.push_str("<Contents>");
                        let mut fields: Vec<&str> = vec!["Key", "Size"];
                        for _ in 0..rnd(5) {
                            fields.push(FIELDS[rnd(5)]);
                        }
                        if rnd(8) == 0 {
                            fields.remove(rnd(2));
                        }
                        for f in fields {
                            match rnd(8) {
                                0 => doc.push_str(&format!("<{f}/>")),
                                1 => doc.push_str(&format!(
                                    "<{f}>{}<Inner>{}</Inner>{}</{f}>",
                                    text(&mut rnd, f),
                                    text(&mut rnd, f),
                                    text(&mut rnd, f)
                                )),
                                _ => doc.push_str(&format!("<{f}>{}</{f}>", text(&mut rnd, f))),
                            }
                        }
                        doc.push_str("</Contents>");
                    }
                    9 => doc.push_str(&format!(
                        "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                        text(&mut rnd, "Key")
                    )),
                    10 => {
                        doc.push_str(&format!("<Code>{}</Code><Message>m</Message><!-- c --> ", text(&mut rnd, "Key")))
                    }
                    _ => {
                        doc.push_str(&format!("<Deep><Contents><Key>{}</Key></Contents></Deep>", text(&mut rnd, "Key")))
                    }
                }
            }
            doc.push_str(&format!("</{root}>"));
            let mut bytes = doc.into_bytes();
            match rnd(8) {
                0 => bytes.truncate(rnd(bytes.len() + 1)),
                1 => {
                    let i = rnd(bytes.len());
                    bytes[i] ^= 1 << rnd(8);
                }
                2 => bytes.extend_from_slice([&b"<Extra/>"[..], b" text", b"  \n"][rnd(3)]),
                _ => {}
            }
            for url in [false, true] {
                let streamed = parse_list_objects_v2(&bytes, url);
                let tree = parse_list_objects_v2_tree(&bytes, url);
                assert_eq!(streamed, tree, "round {round}, url {url}: {}", String::from_utf8_lossy(&bytes));
            }
        }
    }

    #[test]
    fn quotes_are_stripped_once() {
        assert_eq!(strip_quotes("\"abc\""), "abc");
        assert_eq!(strip_quotes("abc"), "abc");
        assert_eq!(strip_quotes("\"abc-3\""), "abc-3");
        assert_eq!(strip_quotes("\""), "\"");
    }
}
