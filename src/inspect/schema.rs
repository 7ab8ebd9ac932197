//! The documented `--json` schema as data: rendered into `faultline inspect --help`, checked against real output by the tests.
//!
//! Scripts depend on this shape, so it is extend-only: a field may be added (and documented here),
//! never renamed or removed within a [`SCHEMA_VERSION`]. [`violations`] says where a JSON value
//! departs from it (a missing field, a field of another type, an undocumented field), so a test
//! can hold real `--json` output to it and the help text can never drift from the code.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::Value;

use super::model::SCHEMA_VERSION;

/// A JSON type in the schema.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// The integer `schema_version`.
    Version,
    /// A non-negative integer.
    Count,
    /// Any string.
    Text,
    /// `true` or `false`.
    Flag,
    /// One of these exact strings.
    Word(&'static [&'static str]),
    /// `null`, or the inner type.
    Nullable(&'static Ty),
    /// An array whose items have the inner type.
    List(&'static Ty),
    /// An object with exactly these fields.
    Object(&'static [Field]),
    /// An object whose field named by the first element says which variant it is; each variant
    /// has exactly its own fields besides that one.
    Tagged(&'static str, &'static [Variant]),
}

/// One documented object field.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Its JSON name (never renamed).
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// What it means (shown in `--help` for top-level fields).
    pub doc: &'static str,
}

/// One variant of a [`Ty::Tagged`] object.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// The tag's value.
    pub name: &'static str,
    /// Its fields besides the tag.
    pub fields: &'static [Field],
}

const fn f(name: &'static str, ty: Ty) -> Field {
    Field { name, ty, doc: "" }
}

const fn d(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field { name, ty, doc }
}

const fn v(name: &'static str, fields: &'static [Field]) -> Variant {
    Variant { name, fields }
}

const OPT_COUNT: Ty = Ty::Nullable(&Ty::Count);
const OPT_TEXT: Ty = Ty::Nullable(&Ty::Text);
const TEXTS: Ty = Ty::List(&Ty::Text);
const LEG: Ty = Ty::Word(&["client", "upstream", "unknown"]);
const DIRECTION: Ty = Ty::Word(&["client->upstream", "upstream->client"]);
const EXCERPT: Ty = Ty::Object(&[f("hex", Ty::Text), f("ascii", Ty::Text)]);

const SUMMARY: Ty = Ty::Object(&[
    f("exchanges", Ty::Count),
    f("uploads", Ty::Count),
    d(
        "retried",
        Ty::Count,
        "uploads (as `uploads` counts them: method + resource, whichever legs) sent more than once",
    ),
    d(
        "retries_differing",
        Ty::Count,
        "uploads, counted like `retried`, with a retry whose body differs from their first attempt",
    ),
    d(
        "downloads",
        Ty::Count,
        "downloaded objects checked, one per object (its address) whichever legs show it",
    ),
    f("h2_streams", Ty::Count),
    f("blobs", Ty::Count),
]);

const CAPTURE: Ty = Ty::Object(&[
    f("path", Ty::Text),
    f("format", Ty::Word(&["pcap", "pcapng"])),
    f("sections", Ty::Count),
    f("packets", Ty::Count),
    f("tcp_segments", Ty::Count),
    f("damage", OPT_TEXT),
    f("truncated_packets", Ty::Count),
]);

const FLOW: Ty = Ty::Object(&[
    f("id", Ty::Count),
    f("leg", LEG),
    f("client", Ty::Text),
    f("server", Ty::Text),
    f("opened_ns", Ty::Count),
    f("saw_syn", Ty::Flag),
    f("http", Ty::Flag),
    f("exchanges", Ty::List(&Ty::Count)),
    f("faults", TEXTS),
    f("h2", Ty::Flag),
    d(
        "connection",
        OPT_COUNT,
        "faultline's connection ordinal (as `connection = N` and the log's conn{id=N} count), from the flow's initial sequence number; null when the SYN was not captured or the capture is not faultline's",
    ),
]);

const REQUEST: Ty = Ty::Object(&[
    f("length", Ty::Count),
    f("expected", OPT_COUNT),
    f("chunked", Ty::Flag),
    f("complete", Ty::Flag),
    f("cut_by", OPT_TEXT),
    f("md5", Ty::Text),
    f("sha256", Ty::Text),
    f("range", OPT_TEXT),
]);

const RESPONSE: Ty = Ty::Object(&[
    f(
        "outcome",
        Ty::Word(&["status", "no_response", "connection_reset"]),
    ),
    f("status", OPT_COUNT),
    f("body_length", Ty::Count),
    f("complete", Ty::Flag),
    f("content_range", OPT_TEXT),
    f("close_delimited", Ty::Flag),
    f("cut_by", OPT_TEXT),
]);

const FAULT: Ty = Ty::Object(&[
    f("text", Ty::Text),
    f("direction", DIRECTION),
    f("offset", Ty::Count),
    f("scope", Ty::Word(&["message", "flow"])),
]);

const EXCHANGE: Ty = Ty::Object(&[
    f("id", Ty::Count),
    f("leg", LEG),
    f("flow", Ty::Count),
    f("time_ns", Ty::Count),
    f("method", Ty::Text),
    f("target", Ty::Text),
    f("host", OPT_TEXT),
    f("request", REQUEST),
    f("response", RESPONSE),
    f("faults", Ty::List(&FAULT)),
]);

const LENGTHS: &[Field] = &[f("first_len", Ty::Count), f("len", Ty::Count)];

const COMPARISON: Ty = Ty::Tagged(
    "result",
    &[
        v("identical", &[]),
        v("empty", &[f("first_len", Ty::Count)]),
        v("prefix_of_first", LENGTHS),
        v("extends_first", LENGTHS),
        v(
            "differs",
            &[
                f("offset", Ty::Count),
                f("first_len", Ty::Count),
                f("len", Ty::Count),
                f("first_excerpt", EXCERPT),
                f("excerpt", EXCERPT),
                f("shifted_from", OPT_COUNT),
                f("before", EXCERPT),
            ],
        ),
    ],
);

const ATTEMPT: Ty = Ty::Object(&[
    f("number", Ty::Count),
    f("exchange", Ty::Count),
    f("status", OPT_COUNT),
    f("length", Ty::Count),
    f("complete", Ty::Flag),
    f("comparison", Ty::Nullable(&COMPARISON)),
    f("description", Ty::Text),
    f("not_compared", OPT_TEXT),
    f("corrupt", Ty::Flag),
]);

const ATTEMPT_GROUP: Ty = Ty::Object(&[
    f("leg", LEG),
    f("method", Ty::Text),
    f("target", Ty::Text),
    f("attempts", Ty::List(&ATTEMPT)),
]);

const ALGOS: &[&str] = &[
    "md5",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "sha3_224",
    "sha3_256",
    "sha3_384",
    "sha3_512",
    "skein256",
    "skein512",
    "blake2b160",
    "blake2b224",
    "blake2b256",
    "blake2b384",
    "blake2b512",
    "blake2bp512",
    "blake2s160",
    "blake2s224",
    "blake2s256",
    "blake2sp224",
    "blake2sp256",
    "blake3_256",
    "xxh3",
    "xxh64",
    "xxh128",
    "none",
    "crc32",
    "crc32c",
    "crc64nvme",
];

const ADDRESS: Ty = Ty::Object(&[
    f("algo", Ty::Word(ALGOS)),
    f("digest", Ty::Text),
    f("size", OPT_COUNT),
    f("scheme", Ty::Word(&["dvc", "git-annex", "cas", "s3"])),
    f("key", OPT_TEXT),
    f("backend", OPT_TEXT),
    f(
        "chunk",
        Ty::Nullable(&Ty::Object(&[f("size", Ty::Count), f("number", Ty::Count)])),
    ),
]);

const MISMATCH: &[Field] = &[f("expected", Ty::Text), f("actual", Ty::Text)];
const SIZE_MISMATCH: &[Field] = &[f("expected", Ty::Count), f("actual", Ty::Count)];

const ADDRESS_CHECK: Ty = Ty::Tagged(
    "result",
    &[
        v("matches", &[]),
        v("digest_mismatch", MISMATCH),
        v("size_mismatch", SIZE_MISMATCH),
        v("not_checked", &[f("reason", Ty::Text)]),
    ],
);

const CONTENT_CHECK: Ty = Ty::Object(&[
    f("exchange", Ty::Count),
    f("address", ADDRESS),
    f("check", ADDRESS_CHECK),
    f("corrupt", Ty::Flag),
]);

const LEG_COMPARISON: Ty = Ty::Object(&[
    f("client_flow", Ty::Count),
    f("upstream_flow", Ty::Count),
    f("exchanges_compared", Ty::Count),
    f("faulted", Ty::Flag),
    f("differences", TEXTS),
    d(
        "difference_details",
        Ty::List(&LEG_DIFFERENCE),
        "each difference with the exchanges (report numbers) it is about; null exchanges for the flows as a whole",
    ),
    f("faultline_bug", Ty::Flag),
    d(
        "capture_ended",
        Ty::Flag,
        "the capture ended while either flow was open: differences at their end are the capture's",
    ),
]);

const LEG_DIFFERENCE: Ty = Ty::Object(&[
    f("text", Ty::Text),
    f("client_exchange", OPT_COUNT),
    f("upstream_exchange", OPT_COUNT),
]);

const PIECE: Ty = Ty::Object(&[
    f("exchange", Ty::Count),
    f("offset", Ty::Count),
    f("length", Ty::Count),
    f("complete", Ty::Flag),
]);

const OBJECT: Ty = Ty::Object(&[
    f("leg", LEG),
    f("transfer", Ty::Word(&["upload", "download"])),
    f("address", ADDRESS),
    f("pieces", Ty::List(&PIECE)),
    f("length", Ty::Count),
    f("complete", Ty::Flag),
    f("check", Ty::Nullable(&ADDRESS_CHECK)),
    f("problems", TEXTS),
    f("corrupt", Ty::Flag),
]);

const P2PHTTP: Ty = Ty::Object(&[
    f("exchange", Ty::Count),
    f("version", Ty::Count),
    f("operation", Ty::Text),
    f("key", OPT_TEXT),
    f("offset", Ty::Count),
    f("answer", OPT_TEXT),
]);

const MOVE: Ty = Ty::Object(&[
    f("exchange", Ty::Count),
    f("method", Ty::Word(&["MOVE", "COPY"])),
    f("source", Ty::Text),
    f("destination", Ty::Text),
    f("status", OPT_COUNT),
    f("upload", OPT_COUNT),
    f("upload_complete", Ty::Nullable(&Ty::Flag)),
]);

const H2_FIELDS: Ty = Ty::List(&Ty::Object(&[f("name", Ty::Text), f("value", Ty::Text)]));

const H2_RESET: Ty = Ty::Object(&[
    f("by", DIRECTION),
    f("code", Ty::Text),
    f("at_ns", OPT_COUNT),
]);

const H2_STREAM: Ty = Ty::Object(&[
    f("flow", Ty::Count),
    f("leg", LEG),
    f("stream", Ty::Count),
    f("opened_ns", Ty::Count),
    f("method", OPT_TEXT),
    f("path", OPT_TEXT),
    f("authority", OPT_TEXT),
    f("status", OPT_COUNT),
    f("request_headers", H2_FIELDS),
    f("response_headers", H2_FIELDS),
    f("trailers", H2_FIELDS),
    d(
        "ignored_after_reset",
        H2_FIELDS,
        "header fields that crossed after the stream's RST_STREAM: ignored by the receiver, so not the call's status",
    ),
    f("grpc_status", OPT_COUNT),
    f("grpc_status_name", OPT_TEXT),
    f("grpc_message", OPT_TEXT),
    f("grpc_status_ns", OPT_COUNT),
    d(
        "response_ns",
        OPT_COUNT,
        "when the response headers crossed (before any reset)",
    ),
    d(
        "response_last_ns",
        OPT_COUNT,
        "when the last response DATA or header block crossed before any reset",
    ),
    f("request_bytes", Ty::Count),
    f("response_bytes", Ty::Count),
    f("request_messages", Ty::Count),
    f("response_messages", Ty::Count),
    f("request_ended", Ty::Flag),
    f("response_ended", Ty::Flag),
    d(
        "response_content_length",
        OPT_COUNT,
        "the response's stated content-length",
    ),
    d(
        "response_cut",
        Ty::Flag,
        "the response began but its body is short: fewer DATA bytes than its content-length, or the stream never ended (RST_STREAM, connection closed)",
    ),
    f("reset", Ty::Nullable(&H2_RESET)),
    f("faults", TEXTS),
]);

const H2_GOAWAY: Ty = Ty::Object(&[
    f("by", DIRECTION),
    f("last_stream", Ty::Count),
    f("code", Ty::Text),
    f("debug", Ty::Text),
    f("at_ns", Ty::Count),
]);

const H2_CONNECTION: Ty = Ty::Object(&[
    f("flow", Ty::Count),
    f("leg", LEG),
    f("streams", Ty::Count),
    f("goaways", Ty::List(&H2_GOAWAY)),
    f("error", OPT_TEXT),
]);

const BLOB_CALL: Ty = Ty::Object(&[
    f("flow", Ty::Count),
    f("stream", Ty::Count),
    f("method", Ty::Word(&["Read", "Write", "QueryWriteStatus"])),
    f("offset", Ty::Count),
    f("length", Ty::Count),
    f("limit", OPT_COUNT),
    f("complete", Ty::Flag),
    f("grpc_status", OPT_COUNT),
    f("reset", OPT_TEXT),
    f("committed_size", OPT_COUNT),
]);

const BLOB: Ty = Ty::Object(&[
    f("leg", LEG),
    f("transfer", Ty::Word(&["upload", "download"])),
    f("resource", Ty::Text),
    f("instance_name", Ty::Text),
    f("hash", Ty::Text),
    f("size", Ty::Count),
    f("compressor", OPT_TEXT),
    f("digest_function", Ty::Text),
    f("calls", Ty::List(&BLOB_CALL)),
    f("length", Ty::Count),
    f("complete", Ty::Flag),
    f("check", Ty::Nullable(&ADDRESS_CHECK)),
    f("matched", OPT_TEXT),
    f("committed_size", OPT_COUNT),
    f("problems", TEXTS),
    f("corrupt", Ty::Flag),
]);

const S3_OPERATIONS: &[&str] = &[
    "PutObject",
    "CopyObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
    "DeleteObjects",
    "CreateBucket",
    "DeleteBucket",
    "HeadBucket",
    "ListObjects",
    "Other",
];

const S3_REQUEST: Ty = Ty::Object(&[
    f("exchange", Ty::Count),
    f("operation", Ty::Word(S3_OPERATIONS)),
    f("style", Ty::Word(&["path", "virtual-host"])),
    f("bucket", OPT_TEXT),
    f("key", OPT_TEXT),
    f("path", Ty::Text),
    f("upload_id", OPT_TEXT),
    f("part_number", OPT_COUNT),
    f("copy_source", OPT_TEXT),
    f("range", OPT_TEXT),
    f("status", OPT_COUNT),
    f("error", OPT_TEXT),
    f("etag", OPT_TEXT),
    f("reported_size", OPT_COUNT),
]);

const EXPECTATION: Ty = Ty::Object(&[
    f("path", Ty::Text),
    f("line", Ty::Count),
    f("expected_size", Ty::Count),
    f("expected_digest", OPT_TEXT),
    f("digest_algo", Ty::Nullable(&Ty::Word(&["md5", "sha256"]))),
    f(
        "result",
        Ty::Word(&[
            "matches",
            "size_mismatch",
            "digest_mismatch",
            "never_stored",
            "deleted",
            "unconfirmed",
            "not_checked",
        ]),
    ),
    f("leg", LEG),
    f("stored_size", OPT_COUNT),
    f("stored_digest", OPT_TEXT),
    f("exchange", OPT_COUNT),
    f("how", OPT_TEXT),
    f("corrupt", Ty::Flag),
    f("description", Ty::Text),
]);

/// The whole `--json` object.
pub const REPORT: &[Field] = &[
    d(
        "schema_version",
        Ty::Version,
        "bumped only for incompatible changes",
    ),
    d(
        "verdict",
        Ty::Word(&["clean", "corrupt", "inconclusive"]),
        "exit 0 | 1 | 3 (3: payload missing, nothing corrupt found; unreadable: exit 2, no JSON)",
    ),
    d(
        "verdict_line",
        Ty::Text,
        "\"OK: ...\" or the first \"CORRUPT: ...\" line",
    ),
    d(
        "findings",
        TEXTS,
        "every corruption found, one \"CORRUPT: ...\" line each",
    ),
    d("summary", SUMMARY, "counts behind the verdict line"),
    d(
        "capture",
        CAPTURE,
        "the file; damage says why reading stopped early (a cut record, a run killed mid-capture)",
    ),
    d(
        "leg_filter",
        Ty::Word(&["client", "upstream", "both"]),
        "the legs inspected (--leg)",
    ),
    d("warnings", TEXTS, "framing lost, capture gaps"),
    d(
        "flows",
        Ty::List(&FLOW),
        "TCP flows; exchanges lists exchange ids",
    ),
    d(
        "exchanges",
        Ty::List(&EXCHANGE),
        "HTTP exchanges in time order, by id (numbers: see above)",
    ),
    d(
        "attempt_groups",
        Ty::List(&ATTEMPT_GROUP),
        "requests sent more than once on a leg, each attempt compared with attempt 1",
    ),
    d(
        "content_checks",
        Ty::List(&CONTENT_CHECK),
        "bodies checked against the content address in their target",
    ),
    d(
        "leg_comparisons",
        Ty::List(&LEG_COMPARISON),
        "client leg vs upstream leg of each proxied connection",
    ),
    d(
        "objects",
        Ty::List(&OBJECT),
        "downloads, resumed/chunked/p2phttp uploads: pieces stitched, the whole checked",
    ),
    d(
        "p2phttp",
        Ty::List(&P2PHTTP),
        "git-annex p2phttp requests: operation, key, offset, JSON answer",
    ),
    d(
        "webdav_moves",
        Ty::List(&MOVE),
        "WebDAV MOVE/COPY and the upload whose bytes they put in place",
    ),
    d(
        "h2_connections",
        Ty::List(&H2_CONNECTION),
        "HTTP/2 connections: streams, GOAWAY codes by name, why decoding stopped",
    ),
    d(
        "h2_streams",
        Ty::List(&H2_STREAM),
        "HTTP/2 streams in time order: headers, status, trailers, gRPC status, RST_STREAM code",
    ),
    d(
        "bytestream",
        Ty::List(&BLOB),
        "ByteStream blobs: Reads/Writes of a resource stitched by offset, checked against its name",
    ),
    d(
        "s3",
        Ty::List(&S3_REQUEST),
        "S3 requests named (their checks: content_checks/objects, scheme \"s3\")",
    ),
    d(
        "expectations",
        Ty::List(&EXPECTATION),
        "--expect MANIFEST: each line against the last successful upload of its PATH",
    ),
    d(
        "run",
        Ty::Nullable(&RUN),
        "the faultline run that wrote the capture, its scenario text too (pcapng section comments)",
    ),
    d(
        "other_runs",
        Ty::List(&RUN),
        "more runs of a concatenated capture (a pcapng section each), after run",
    ),
];

const RUN: Ty = Ty::Object(&[
    f("faultline_version", Ty::Text),
    f("scenario", Ty::Text),
    f("seed", Ty::Count),
    f("command", Ty::Text),
    f("replay", Ty::Text),
    f("scenario_toml", OPT_TEXT),
    f("scenario_cut", Ty::Flag),
    f("scenario_origin", OPT_TEXT),
    f("scenario_file", OPT_TEXT),
    f("replay_note", OPT_TEXT),
]);

/// The schema as `faultline inspect --help` shows it.
pub fn help() -> String {
    let mut s = format!(
        "faultline inspect --json (schema_version {SCHEMA_VERSION}): one JSON object. Fields are \
         added, never renamed.\nTypes: n = integer, \"text\" = string, bool, null|T = may be null,\n  \
         [T] = list, {{..}} = object, \"a\"|\"b\" = one of these strings.\n\
         Numbers: an exchange's id (what every \"exchange\" field names) numbers the exchanges of\n  \
         every leg in time order, so it is the same whatever --leg shows; with --leg client or\n  \
         upstream the other leg's ids are missing from exchanges. A flow's id is tshark's tcp.stream.\n\
         An exchange's faults[] are the capture comments that touched it: direction and offset\n  \
         say where the commented packet is (a reset's note rides on the RST faultline sent), not\n  \
         which direction the fault counted; the text says what the fault did.\n\
         A run's seed may exceed 2^53, which JavaScript and jq round: its replay command has it exact.\n"
    );
    for field in REPORT {
        let _ = writeln!(s, "  {:<16} {}", field.name, field.doc);
        for line in wrap(&inline(&field.ty), 96) {
            let _ = writeln!(s, "      {line}");
        }
    }
    s
}

fn inline(ty: &Ty) -> String {
    match ty {
        Ty::Version => SCHEMA_VERSION.to_string(),
        Ty::Count => "n".into(),
        Ty::Text => "\"text\"".into(),
        Ty::Flag => "bool".into(),
        Ty::Word(words) => words
            .iter()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join("|"),
        Ty::Nullable(inner) => format!("null|{}", inline(inner)),
        Ty::List(inner) => format!("[{}]", inline(inner)),
        Ty::Object(fields) => format!("{{{}}}", fields_inline(fields)),
        Ty::Tagged(tag, variants) => variants
            .iter()
            .map(|variant| {
                let mut s = format!("{{{tag}: \"{}\"", variant.name);
                if !variant.fields.is_empty() {
                    s.push_str(", ");
                    s.push_str(&fields_inline(variant.fields));
                }
                s.push('}');
                s
            })
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

fn fields_inline(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| match f.ty {
            Ty::Count => f.name.to_string(),
            _ => format!("{}: {}", f.name, inline(&f.ty)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits `text` after a `,` or `|` into lines of at most about `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for piece in text.split_inclusive([',', '|']) {
        if !line.is_empty() && line.len() + piece.len() > width {
            lines.push(line.trim().to_string());
            line = String::new();
        }
        line.push_str(piece);
    }
    if !line.trim().is_empty() {
        lines.push(line.trim().to_string());
    }
    lines
}

/// Where `value` departs from the schema (empty when it follows it). Each entry names the JSON
/// path (`exchanges[3].request.md5`) and what is wrong. `seen` collects every documented field
/// path (`exchanges[].request.md5`, variant fields as `...comparison<differs>.offset`) that was
/// present, so a test can tell which parts of the schema its outputs exercised.
pub fn violations(value: &Value, seen: &mut BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    check_fields(REPORT, value, "", "", seen, &mut out);
    out
}

/// Every documented field path, in the form [`violations`] records in `seen`.
pub fn paths() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    collect_fields(REPORT, "", &mut all);
    all
}

fn collect_fields(fields: &[Field], prefix: &str, all: &mut BTreeSet<String>) {
    for field in fields {
        let path = join(prefix, field.name);
        all.insert(path.clone());
        collect_ty(&field.ty, &path, all);
    }
}

fn collect_ty(ty: &Ty, path: &str, all: &mut BTreeSet<String>) {
    match ty {
        Ty::Nullable(inner) => collect_ty(inner, path, all),
        Ty::List(inner) => collect_ty(inner, &format!("{path}[]"), all),
        Ty::Object(fields) => collect_fields(fields, path, all),
        Ty::Tagged(_, variants) => {
            for variant in *variants {
                let at = format!("{path}<{}>", variant.name);
                all.insert(at.clone());
                collect_fields(variant.fields, &at, all);
            }
        }
        _ => {}
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn check_fields(
    fields: &[Field],
    value: &Value,
    at: &str,
    shape: &str,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<String>,
) {
    let Some(object) = value.as_object() else {
        out.push(format!("{}: expected an object, got {value}", show(at)));
        return;
    };
    for field in fields {
        let (at, shape) = (join(at, field.name), join(shape, field.name));
        match object.get(field.name) {
            Some(v) => {
                seen.insert(shape.clone());
                check(&field.ty, v, &at, &shape, seen, out);
            }
            None => out.push(format!("{at}: documented field is missing")),
        }
    }
    for name in object.keys() {
        if !fields.iter().any(|f| f.name == name) {
            out.push(format!("{}: field is not documented", join(at, name)));
        }
    }
}

fn show(at: &str) -> &str {
    if at.is_empty() {
        "(top level)"
    } else {
        at
    }
}

fn check(
    ty: &Ty,
    value: &Value,
    at: &str,
    shape: &str,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<String>,
) {
    let wrong = |what: &str| format!("{at}: expected {what}, got {value}");
    match ty {
        Ty::Version => {
            if value.as_u64() != Some(u64::from(SCHEMA_VERSION)) {
                out.push(wrong(&SCHEMA_VERSION.to_string()));
            }
        }
        Ty::Count => {
            if value.as_u64().is_none() {
                out.push(wrong("a non-negative integer"));
            }
        }
        Ty::Text => {
            if !value.is_string() {
                out.push(wrong("a string"));
            }
        }
        Ty::Flag => {
            if !value.is_boolean() {
                out.push(wrong("true or false"));
            }
        }
        Ty::Word(words) => {
            if !value.as_str().is_some_and(|s| words.contains(&s)) {
                out.push(wrong(&inline(ty)));
            }
        }
        Ty::Nullable(inner) => {
            if !value.is_null() {
                check(inner, value, at, shape, seen, out);
            }
        }
        Ty::List(inner) => match value.as_array() {
            Some(items) => {
                let shape = format!("{shape}[]");
                for (i, item) in items.iter().enumerate() {
                    check(inner, item, &format!("{at}[{i}]"), &shape, seen, out);
                }
            }
            None => out.push(wrong("a list")),
        },
        Ty::Object(fields) => check_fields(fields, value, at, shape, seen, out),
        Ty::Tagged(tag, variants) => {
            let name = value.get(*tag).and_then(Value::as_str).unwrap_or("");
            let Some(variant) = variants.iter().find(|v| v.name == name) else {
                out.push(wrong(&format!("an object whose {tag} is {}", inline(ty))));
                return;
            };
            let shape = format!("{shape}<{name}>");
            seen.insert(shape.clone());
            let mut rest = value.clone();
            if let Some(object) = rest.as_object_mut() {
                object.remove(*tag);
            }
            check_fields(variant.fields, &rest, at, &shape, seen, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn s3_operations_and_algorithms_are_all_documented() {
        let names: Vec<&str> = super::super::s3_request::Operation::ALL
            .iter()
            .map(|o| o.name())
            .collect();
        assert_eq!(names, S3_OPERATIONS);
        for algo in super::super::digest::HashAlgo::ALL {
            assert!(ALGOS.contains(&algo.name()), "{algo:?}");
        }
    }

    #[test]
    fn help_names_every_top_level_field_and_nested_ones() {
        let text = help();
        for field in REPORT {
            assert!(text.contains(&format!("  {:<16} ", field.name)), "{text}");
        }
        for piece in [
            "cut_by: null|\"text\"",
            "{result: \"differs\", offset",
            "scheme: \"dvc\"|\"git-annex\"|\"cas\"",
        ] {
            assert!(text.contains(piece), "{piece} in:\n{text}");
        }
        assert!(text.lines().all(|l| l.len() <= 110), "{text}");
    }

    #[test]
    fn violations_name_missing_mistyped_and_undocumented_fields() {
        const TY: Ty = Ty::Object(&[
            f("a", Ty::Count),
            f("b", Ty::Nullable(&Ty::Text)),
            f("c", COMPARISON),
        ]);
        let ty = TY;
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        check(
            &ty,
            &json!({"a": 1, "b": null, "c": {"result": "empty", "first_len": 3}}),
            "x",
            "x",
            &mut seen,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        assert!(seen.contains("x.c<empty>.first_len"), "{seen:?}");
        check(
            &ty,
            &json!({"a": "1", "c": {"result": "empty", "first_len": 3, "len": 2}, "z": 0}),
            "x",
            "x",
            &mut seen,
            &mut out,
        );
        assert_eq!(
            out,
            [
                "x.a: expected a non-negative integer, got \"1\"",
                "x.b: documented field is missing",
                "x.c.len: field is not documented",
                "x.z: field is not documented",
            ]
        );
        assert!(paths().contains("attempt_groups[].attempts[].comparison<differs>.shifted_from"));
    }
}
