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
    let mut reader = Reader::from_reader(body);
    // Keys may start or end with spaces, so text is kept exactly.
    reader.config_mut().trim_text(false);
    let mut stack: Vec<XmlElement> = Vec::new();
    let mut root: Option<XmlElement> = None;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err("XML has content after the root element".to_string());
                }
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                stack.push(XmlElement { name, ..XmlElement::default() });
            }
            Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let element = XmlElement { name, ..XmlElement::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return Err("XML has content after the root element".to_string()),
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or("XML has an unmatched end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| format!("XML text is not UTF-8: {e}"))?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let text = data.decode().map_err(|e| format!("XML CDATA is not UTF-8: {e}"))?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(reference) => {
                let resolved =
                    match reference.resolve_char_ref().map_err(|e| format!("XML character reference: {e}"))? {
                        Some(c) => c.to_string(),
                        None => {
                            let name = reference.decode().map_err(|e| format!("XML entity is not UTF-8: {e}"))?;
                            quick_xml::escape::resolve_xml_entity(&name)
                                .ok_or_else(|| format!("XML has an unknown entity '&{name};'"))?
                                .to_string()
                        }
                    };
                push_text(&mut stack, &resolved)?;
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
        buf.clear();
    }
    if let Some(open) = stack.last() {
        return Err(format!("XML body ends inside <{}> (cut short)", open.name));
    }
    root.ok_or_else(|| "XML body is empty".to_string())
}

fn push_text(stack: &mut [XmlElement], text: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some(element) => {
            element.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err("XML has text outside the root element".to_string()),
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
pub fn parse_list_objects_v2(body: &[u8], url_encoding_requested: bool) -> Result<ListPage, ListParseError> {
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
        let size = size.trim().parse::<u64>().map_err(|_| format!("Size '{size}' of key '{key}' is not a number"))?;
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

/// Removes one pair of surrounding double quotes from an ETag, if present.
pub fn strip_quotes(etag: &str) -> &str {
    let etag = etag.trim();
    etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn quotes_are_stripped_once() {
        assert_eq!(strip_quotes("\"abc\""), "abc");
        assert_eq!(strip_quotes("abc"), "abc");
        assert_eq!(strip_quotes("\"abc-3\""), "abc-3");
        assert_eq!(strip_quotes("\""), "\"");
    }
}
