//! Checks for credentials: token checksums (GitHub's CRC32), JWT headers, entropy, and
//! the judgement behind the generic assignment rule: is this key name one that holds a
//! secret, and is the value assigned to it a secret rather than code, a reference or a
//! placeholder?

use base64::Engine;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// Tokens with GitHub's checksum scheme (`ghp_` and friends, npm's `npm_`): 30 random
/// base62 characters followed by the base62 CRC32 of those characters, zero-padded to six.
pub fn github_crc32(v: &[u8]) -> bool {
    let Some(us) = v.iter().position(|&b| b == b'_') else {
        return false;
    };
    let body = &v[us + 1..];
    if body.len() != 36 || !body.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (random, check) = body.split_at(30);
    base62_6(crc32fast::hash(random)) == check
}

/// JWT: the first segment is base64url JSON with an `alg` member.
pub fn jwt(v: &[u8]) -> bool {
    let Some(head) = v.split(|&b| b == b'.').next() else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.strip_suffix(b"=").unwrap_or(head))
    else {
        return false;
    };
    decoded.windows(5).any(|w| w == b"\"alg\"")
}

/// Shannon entropy in bits per byte.
pub fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        counts[b as usize] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Filler that is not random even when its entropy is: runs of the alphabet or of
/// digits (`abcdef123456`, `0123456789`), and short patterns repeated (`abcabcabc`).
pub fn is_filler(v: &[u8]) -> bool {
    if v.len() < 4 {
        return true;
    }
    let steps = v
        .windows(2)
        .filter(|w| w[1].wrapping_sub(w[0]) == 1 || w[0].wrapping_sub(w[1]) == 1)
        .count();
    if steps * 2 >= v.len() {
        return true;
    }
    // Few distinct trigrams for the length: a short pattern repeated.
    let mut grams: Vec<[u8; 3]> = v.windows(3).map(|w| [w[0], w[1], w[2]]).collect();
    grams.sort_unstable();
    grams.dedup();
    grams.len() * 3 < (v.len() - 2) * 2 && v.len() >= 12
}

pub fn secret_value(v: &[u8]) -> bool {
    if !(8..=200).contains(&v.len()) || !v.iter().all(|b| (0x21..0x7f).contains(b)) {
        return false;
    }
    if matches!(
        v[0],
        b'$' | b'%' | b'{' | b'(' | b'[' | b'&' | b'*' | b'@' | b'/' | b'~'
    ) || v.starts_with(b"./")
        || v.starts_with(b"../")
        || memchr::memmem::find(v, b"://").is_some()
    {
        return false;
    }
    // A file name, not a secret: `key.pem`, `secrets.json`.
    const FILE_EXT: &[&[u8]] = &[
        b".pem", b".key", b".json", b".txt", b".yaml", b".yml", b".toml", b".env", b".crt",
        b".cfg", b".conf", b".ini", b".py", b".js", b".p12", b".pfx", b".jks", b".gpg",
    ];
    if FILE_EXT
        .iter()
        .any(|e| v.len() > e.len() && v[v.len() - e.len()..].eq_ignore_ascii_case(e))
    {
        return false;
    }
    let ident = |p: &[u8]| {
        !p.is_empty()
            && (p[0].is_ascii_alphabetic() || p[0] == b'_')
            && p.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    if v.contains(&b'.') && v.split(|&b| b == b'.').all(ident) {
        return false;
    }
    // Characters per class: lower, upper, digit, symbol (other than `_ . -`).
    let mut n = [0usize; 4];
    for &b in v {
        match b {
            b'a'..=b'z' => n[0] += 1,
            b'A'..=b'Z' => n[1] += 1,
            b'0'..=b'9' => n[2] += 1,
            b'_' | b'.' | b'-' => {}
            _ => n[3] += 1,
        }
    }
    let classes = n.iter().filter(|&&c| c > 0).count();
    // With only two classes, a lone character of one (`anonymous@`, `Config1`) is not
    // enough mixing.
    let two_mixed = classes == 2 && n.iter().all(|&c| c == 0 || c >= 2);
    // Letters only, lower-case runs of three or more on average and at most one of
    // length one: words joined in camel case (`PasswordField`, `CFStringRef`,
    // `ZeroizeOnDrop`), not random mixed case (`WqxMbTsQRvEk`).
    let camel_word = v.iter().all(u8::is_ascii_alphabetic) && {
        let runs = v.split(u8::is_ascii_uppercase).filter(|r| !r.is_empty());
        let (count, ones, total) = runs.fold((0, 0, 0), |(c, o, t), r| {
            (c + 1, o + usize::from(r.len() == 1), t + r.len())
        });
        count > 0 && ones <= 1 && total >= 3 * count
    };
    // A snake_case identifier (`_bindgen_ty_22`) needs all three letter/digit classes.
    let snake_ident = v.contains(&b'_')
        && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && n[..3].contains(&0);
    if snake_ident {
        return false;
    }
    let shaped = classes >= 3 || (two_mixed && v.len() >= 10 && !camel_word);
    shaped && entropy(v) >= 2.5
}

/// What a key name says its value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `password`, `DB_PASSWD`, `pwd`, `密码`: a human-chosen password.
    Password,
    /// `api_key`, `client_secret`, `authToken`, `credentials`, `密钥`: a machine secret.
    Secret,
    /// `auth` alone (Docker `config.json`, `.npmrc` `_auth`): base64 of `user:password`.
    Auth,
}

/// Words that name a password.
const PASSWORD_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "pwd",
    "pass",
    "passwort",
    "contrasena",
    "motdepasse",
];
/// Words that name a machine secret on their own.
const SECRET_WORDS: &[&str] = &[
    "secret",
    "token",
    "credential",
    "credentials",
    "creds",
    "apikey",
    "secretkey",
    "accesskey",
    "privatekey",
];
/// Words glued in front of a secret word without a separator (`apitoken`,
/// `clientsecret`, `dbpassword`): a compound key name.
const COMPOUND_PREFIXES: &[&str] = &[
    "api",
    "auth",
    "access",
    "secret",
    "client",
    "app",
    "bot",
    "user",
    "db",
    "admin",
    "root",
    "refresh",
    "session",
    "oauth",
    "bearer",
    "private",
    "master",
    "service",
    "account",
    "consumer",
    "mail",
    "smtp",
    "ftp",
    "ssh",
    "jwt",
    "login",
    "signing",
    "encryption",
    "webhook",
    "my",
    "sa",
    "deploy",
    "registry",
    "npm",
    "github",
    "gitlab",
    "personal",
];
/// A `key` is a secret only after one of these words (`api_key`, `private-key`,
/// `signingKey`); `primary_key`, `sort_key`, `keyboard` are not.
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "secret",
    "access",
    "private",
    "client",
    "app",
    "auth",
    "encryption",
    "signing",
    "master",
    "service",
    "account",
    "subscription",
    "consumer",
    "developer",
    "webhook",
    "shared",
    "storage",
    "admin",
    "root",
    "hmac",
    "session",
    "jwt",
    "crypto",
    "aes",
    "sk",
    "license",
    "licence",
    "security",
    "integration",
    "partner",
    "merchant",
    "x",
];
/// Words in front of a secret word that make it something else: `public_key`,
/// `csrf_token`, `max_tokens`, `eos_token`, `page_token`, `CancellationToken`.
const NOT_SECRET_BEFORE: &[&str] = &[
    "public",
    "pub",
    "csrf",
    "xsrf",
    "primary",
    "foreign",
    "sort",
    "cache",
    "partition",
    "row",
    "idempotency",
    "continuation",
    "next",
    "prev",
    "previous",
    "page",
    "pagination",
    "cursor",
    "sync",
    "max",
    "min",
    "num",
    "total",
    "input",
    "output",
    "completion",
    "completions",
    "prompt",
    "eos",
    "bos",
    "pad",
    "unk",
    "sep",
    "cls",
    "mask",
    "special",
    "cancellation",
    "cancel",
    "lexer",
    "parser",
    "parse",
    "hot",
    "bucket",
    "object",
    "dict",
    "map",
    "lookup",
    "hash",
    "unique",
    "composite",
    "natural",
    "schema",
    "sequence",
    "idx",
    "index",
    "issuer",
    "reset",
    "forgot",
    "verify",
    "verification",
    "confirm",
    "new",
    "old",
    "expected",
    "expect",
    "test",
    "dummy",
    "fake",
    "mock",
    "example",
    "sample",
    "default",
    "stop",
    "start",
    "end",
    "begin",
    "line",
    "word",
    "char",
    "sub",
    "no",
    "has",
    "is",
    "use",
    "get",
    "with",
    "without",
    "show",
    "hide",
    "toggle",
    "request",
    "require",
    "required",
];
/// Words after a secret word that make the key something else: `token_url`,
/// `secret_name`, `password_length`, `api_key_id`.
const NOT_SECRET_AFTER: &[&str] = &[
    "name",
    "names",
    "id",
    "ids",
    "type",
    "types",
    "url",
    "uri",
    "urls",
    "endpoint",
    "path",
    "file",
    "filename",
    "files",
    "dir",
    "directory",
    "length",
    "len",
    "size",
    "count",
    "format",
    "field",
    "fields",
    "header",
    "prefix",
    "suffix",
    "expiry",
    "expires",
    "expiration",
    "expire",
    "expired",
    "ttl",
    "timeout",
    "limit",
    "limits",
    "max",
    "min",
    "policy",
    "mode",
    "label",
    "version",
    "enabled",
    "enable",
    "disabled",
    "required",
    "placeholder",
    "hint",
    "pattern",
    "regex",
    "env",
    "var",
    "variable",
    "index",
    "column",
    "table",
    "param",
    "parameter",
    "list",
    "description",
    "desc",
    "text",
    "title",
    "msg",
    "message",
    "error",
    "errors",
    "validation",
    "validator",
    "strength",
    "rotation",
    "store",
    "manager",
    "provider",
    "helper",
    "location",
    "ref",
    "reference",
    "source",
    "kind",
    "class",
    "struct",
    "fn",
    "func",
    "function",
    "method",
    "handler",
    "callback",
    "input",
    "output",
    "field",
    "widget",
    "form",
    "reset",
    "changed",
    "updated",
    "created",
    "at",
    "date",
    "time",
    "age",
    "count",
    "counter",
    "usage",
    "used",
    "budget",
    "cost",
    "price",
    "estimate",
    "bytes",
    "bits",
    "algorithm",
    "algo",
    "scheme",
    "schema",
    "spec",
    "config",
    "cfg",
    "settings",
    "option",
    "options",
    "arn",
    "alias",
    "ring",
    "store",
    "pair",
    "selector",
    "vault",
    "keeper",
    "service",
    "check",
    "checker",
    "checks",
    "policy",
];

/// Split a key name into lower-case words: at separators and at camel-case humps
/// (`mySecretString` → my, secret, string; `APIKey` → api, key; `DB_PASSWORD` → db,
/// password).
fn key_words(key: &[u8]) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, words: &mut Vec<String>| {
        if !cur.is_empty() {
            words.push(std::mem::take(cur).to_ascii_lowercase());
        }
    };
    for (i, &b) in key.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            flush(&mut cur, &mut words);
            continue;
        }
        let prev = i.checked_sub(1).map(|j| key[j]);
        let next = key.get(i + 1).copied();
        let hump = b.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        let digit_edge = prev.is_some_and(|p| p.is_ascii_digit() != b.is_ascii_digit());
        if hump || digit_edge {
            flush(&mut cur, &mut words);
        }
        cur.push(b as char);
    }
    flush(&mut cur, &mut words);
    words
}

/// Does this key name hold a secret, and which kind? The secret word must be a whole
/// word of the name (so `io.jsonwebtoken` and `authority` are not keys), or a compound
/// of a known prefix and a secret word (`apitoken`, `clientsecret`).
pub fn key_kind(key: &[u8]) -> Option<KeyKind> {
    if let Ok(s) = std::str::from_utf8(key) {
        if s.contains("密码") || s.contains("口令") || s.contains("密碼") {
            return Some(KeyKind::Password);
        }
        if ["密钥", "秘钥", "令牌", "密鑰", "金鑰"]
            .iter()
            .any(|w| s.contains(w))
        {
            return Some(KeyKind::Secret);
        }
    }
    // In a dotted path the secret word must be in the last part: `spring.datasource.password`
    // names a password, `password.translate` is a method call on one. A bare `key` may
    // take its qualifier from the part before (`secret.key`).
    let mut parts = key.rsplit(|&b| b == b'.');
    let last = parts.next().unwrap_or_default();
    let mut words = key_words(last);
    if let Some(prev) = parts.next().and_then(|p| key_words(p).pop()) {
        if words.first().is_some_and(|w| w == "key" || w == "keys") {
            words.insert(0, prev);
        }
    }
    let mut found: Option<(usize, KeyKind)> = None;
    for (i, w) in words.iter().enumerate() {
        let kind = word_kind(
            w,
            i.checked_sub(1).map(|j| words[j].as_str()),
            i + 1 == words.len(),
        );
        if let Some(k) = kind {
            found = Some((i, k));
        }
    }
    let (at, kind) = found?;
    if at > 0 && NOT_SECRET_BEFORE.contains(&words[at - 1].as_str()) {
        return None;
    }
    // Any word after the secret word that names a property of it, not its value.
    if words[at + 1..]
        .iter()
        .any(|w| NOT_SECRET_AFTER.contains(&w.as_str()))
    {
        return None;
    }
    Some(kind)
}

fn word_kind(w: &str, prev: Option<&str>, last: bool) -> Option<KeyKind> {
    if PASSWORD_WORDS.contains(&w) {
        return Some(KeyKind::Password);
    }
    if SECRET_WORDS.contains(&w) {
        return Some(KeyKind::Secret);
    }
    if w == "key" || w == "keys" {
        return prev
            .is_some_and(|p| KEY_QUALIFIERS.contains(&p))
            .then_some(KeyKind::Secret);
    }
    if w == "auth" && last {
        return Some(KeyKind::Auth);
    }
    if w == "sk" && last && prev.is_none() {
        return Some(KeyKind::Secret);
    }
    // Compounds: `apitoken`, `clientsecret`, `dbpassword`, `apikey`.
    for (suffix, kind) in [
        ("password", KeyKind::Password),
        ("passwd", KeyKind::Password),
        ("pwd", KeyKind::Password),
        ("pass", KeyKind::Password),
        ("secret", KeyKind::Secret),
        ("token", KeyKind::Secret),
        ("key", KeyKind::Secret),
    ] {
        if let Some(p) = w.strip_suffix(suffix) {
            let ok = if suffix == "key" {
                KEY_QUALIFIERS.contains(&p)
            } else {
                COMPOUND_PREFIXES.contains(&p)
            };
            if ok {
                return Some(kind);
            }
        }
    }
    None
}

/// A machine-generated secret (API key, token, client secret): 10-200 printable
/// characters with letters and a digit (or a base64/symbol character), no spaces, some
/// randomness, not filler, not code.
pub fn token_value(v: &[u8]) -> bool {
    if !(10..=200).contains(&v.len()) || !v.iter().all(|b| (0x21..0x7f).contains(b)) {
        return false;
    }
    if is_code_or_reference(v)
        || is_constant_name(v)
        || is_identifier_like(v)
        || is_numeric_literal(v)
    {
        return false;
    }
    let letters = v.iter().filter(|b| b.is_ascii_alphabetic()).count();
    let digits = v.iter().filter(|b| b.is_ascii_digit()).count();
    let symbols = v.len() - letters - digits;
    if letters == 0 || (digits == 0 && !v.iter().any(|b| matches!(b, b'+' | b'/' | b'~'))) {
        return false;
    }
    // A dotted or dashed identifier path (`foo.bar.baz`, `my-service-name`) is not random.
    if symbols > 0
        && digits == 0
        && v.iter()
            .all(|b| b.is_ascii_lowercase() || matches!(b, b'.' | b'-' | b'_'))
    {
        return false;
    }
    !is_filler(v) && entropy(v) >= 3.0
}

/// Values that are code or point elsewhere instead of holding a secret: variable
/// references (`$X`, `${X}`, `%X%`), calls (`getenv(`), attribute paths
/// (`self.password`, `os.environ`), literals (`None`, `true`), file names and URLs.
fn is_code_or_reference(v: &[u8]) -> bool {
    if matches!(
        v[0],
        b'$' | b'%' | b'{' | b'(' | b'[' | b'&' | b'*' | b'@' | b'/' | b'~' | b'<' | b'#'
    ) || v.starts_with(b"./")
        || v.starts_with(b"../")
        || memchr::memmem::find(v, b"://").is_some()
        || memchr::memmem::find(v, b"${").is_some()
    {
        return true;
    }
    const WORDS: &[&[u8]] = &[
        b"null",
        b"None",
        b"none",
        b"true",
        b"false",
        b"True",
        b"False",
        b"undefined",
        b"nil",
        b"NULL",
    ];
    if WORDS.contains(&v) {
        return true;
    }
    const FILE_EXT: &[&[u8]] = &[
        b".pem", b".key", b".json", b".txt", b".yaml", b".yml", b".toml", b".env", b".crt",
        b".cfg", b".conf", b".ini", b".py", b".js", b".p12", b".pfx", b".jks", b".gpg", b".html",
        b".xml", b".keytab", b".cer", b".der", b".log",
    ];
    if FILE_EXT
        .iter()
        .any(|e| v.len() > e.len() && v[v.len() - e.len()..].eq_ignore_ascii_case(e))
    {
        return true;
    }
    let ident = |p: &[u8]| {
        !p.is_empty()
            && (p[0].is_ascii_alphabetic() || p[0] == b'_')
            && p.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    // `self.password`, `os.environ`, `config.api_key`: a dotted identifier path.
    v.contains(&b'.') && v.split(|&b| b == b'.').all(ident)
}

/// A name made of words, not a random string: `x25519_generate_private_key`,
/// `Curve25519SeedBin`, `SpChangeAccountPasswordFn`, `Win32_System_Threading`. At least two
/// pronounceable words of three letters or more covering most of the value.
fn is_identifier_like(v: &[u8]) -> bool {
    if !v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
        return false;
    }
    // Names join their words with `_` or camel-case humps; a random string has neither
    // (lower case) or humps everywhere (mixed case, and then few of its pieces are words).
    let hump = v
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    if !v.contains(&b'_') && !hump {
        return false;
    }
    let words = key_words(v);
    let vowel = |w: &String| w.bytes().any(|b| b"aeiouy".contains(&b));
    let wordy: Vec<&String> = words
        .iter()
        .filter(|w| w.len() >= 3 && w.bytes().all(|b| b.is_ascii_alphabetic()) && vowel(w))
        .collect();
    let covered: usize = wordy.iter().map(|w| w.len()).sum();
    wordy.len() >= 2 && covered * 10 >= v.len() * 6
}

/// A numeric literal of code: `-1073740699i32`, `2151809297u32`, `0x7fff_ffff`, `1.5`.
fn is_numeric_literal(v: &[u8]) -> bool {
    let v = v.strip_prefix(b"-").unwrap_or(v);
    let (body, hex) = match v.strip_prefix(b"0x").or_else(|| v.strip_prefix(b"0X")) {
        Some(rest) => (rest, true),
        None => (v, false),
    };
    if body.is_empty() {
        return false;
    }
    let digits = body
        .iter()
        .take_while(|b| {
            (if hex {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            }) || matches!(b, b'_' | b'.')
        })
        .count();
    let suffix = &body[digits..];
    digits > 0
        && body[0].is_ascii_hexdigit()
        && matches!(
            suffix,
            b"" | b"u8"
                | b"u16"
                | b"u32"
                | b"u64"
                | b"u128"
                | b"usize"
                | b"i8"
                | b"i16"
                | b"i32"
                | b"i64"
                | b"i128"
                | b"isize"
                | b"f32"
                | b"f64"
                | b"L"
                | b"UL"
                | b"ULL"
                | b"u"
                | b"l"
        )
}

/// Passwords that documentation, tests and tutorials use as examples: not anybody's.
fn is_example_password(v: &[u8]) -> bool {
    const EXAMPLES: &[&str] = &[
        "password",
        "password1",
        "password12",
        "password123",
        "password1234",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "changeme",
        "changeit",
        "secret",
        "secret123",
        "admin",
        "admin123",
        "root",
        "toor",
        "123456",
        "12345678",
        "123456789",
        "qwerty",
        "letmein",
        "welcome",
        "test",
        "test123",
        "testpass",
        "testpassword",
        "example",
        "foobar",
        "hunter2",
        "mypassword",
        "yourpassword",
        "s3cr3t",
        "pass1234",
    ];
    EXAMPLES
        .iter()
        .any(|e| e.as_bytes().eq_ignore_ascii_case(v))
}

/// An identifier written as a constant or private name: `__X32_SYSCALL_BIT`,
/// `_bindgen_ty_5`, `SECRET_KEY_FILE`. Secrets are random; these are words joined by `_`.
fn is_constant_name(v: &[u8]) -> bool {
    let ident = v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if !ident || !v.contains(&b'_') {
        return false;
    }
    if v[0] == b'_' {
        return true;
    }
    // UPPER_SNAKE with a pronounceable word in it (`D3DKMT_PRESENTHISTORYTOKEN_0`).
    let upper = v
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
    upper
        && v.split(|&b| b == b'_').any(|w| {
            w.len() >= 4
                && w.iter().all(u8::is_ascii_alphabetic)
                && w.iter().any(|b| b"AEIOUY".contains(b))
        })
}

/// Base64 of `user:password`, as Docker's `config.json` `auth` and `.npmrc` `_auth` hold.
pub fn base64_userpass(v: &[u8]) -> bool {
    let Ok(d) = base64::engine::general_purpose::STANDARD.decode(v) else {
        return false;
    };
    let Some(colon) = d.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0 && d.len() > colon + 1 && d.iter().all(|b| (0x20..0x7f).contains(b))
}

/// A password written in prose after an explicit label (`数据库密码：WinterVzEmtQmbhn`):
/// no code around it to be confused with, so any mix of two character classes will do.
fn labelled_password(v: &[u8]) -> bool {
    if !(6..=128).contains(&v.len()) || !v.iter().all(|b| (0x21..0x7f).contains(b)) {
        return false;
    }
    let classes = [
        v.iter().any(u8::is_ascii_lowercase),
        v.iter().any(u8::is_ascii_uppercase),
        v.iter().any(u8::is_ascii_digit),
        v.iter().any(|b| !b.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|&&c| c)
    .count();
    classes >= 2 && !is_filler(v) && entropy(v) >= 2.5
}

/// The generic assignment check. `key` is the rule's `key` group: the key name followed
/// by how the value is attached (`password = `, `"api_token", "`, `password is `, `--token `).
/// The name must hold a secret and the value fit its kind. Attached by whitespace only
/// (`the password is …`, `.netrc`'s `password …`), the name must be an unambiguous
/// password word: `two-pass memchr2` or `client auth certificate/keys` are prose.
pub fn assignment(key: &[u8], value: &[u8]) -> bool {
    if is_code_or_reference(value)
        || is_constant_name(value)
        || is_numeric_literal(value)
        || is_example_password(value)
    {
        return false;
    }
    let name_len = key
        .iter()
        .position(|b| {
            !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'$') || *b >= 0x80)
        })
        .unwrap_or(key.len());
    let (name, attach) = key.split_at(name_len);
    let name = name.strip_prefix(b"--").unwrap_or(name);
    let name = name.strip_prefix(b"$").unwrap_or(name);
    let by_space = !attach
        .iter()
        .any(|b| matches!(b, b'=' | b':' | b'>' | b'(' | b',' | b'|') || *b >= 0x80);
    // A label in Chinese is prose, not a code identifier: `密码：…`, `口令是…`.
    let prose_label = !name.is_ascii();
    let kind = key_kind(name);
    if by_space && !prose_label {
        let flag = key.starts_with(b"--");
        let word = key_words(name);
        let strong = word.last().is_some_and(|w| {
            ["password", "passwd", "passphrase", "passcode", "pwd"].contains(&w.as_str())
        });
        if !(strong || (flag && kind.is_some())) {
            return false;
        }
    }
    match kind {
        Some(KeyKind::Password) if prose_label => labelled_password(value),
        Some(KeyKind::Password) => {
            secret_value(value)
                && !(value.iter().all(u8::is_ascii_alphabetic) && is_identifier_like(value))
        }
        Some(KeyKind::Secret) => token_value(value),
        Some(KeyKind::Auth) => base64_userpass(value) || token_value(value),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_checksum() {
        // Build a token with the published scheme and check both directions.
        let random = b"abcdefghijABCDEFGHIJ0123456789";
        let mut tok = b"ghp_".to_vec();
        tok.extend_from_slice(random);
        tok.extend_from_slice(&base62_6(crc32fast::hash(random)));
        assert!(github_crc32(&tok));
        let last = tok.len() - 1;
        tok[last] = if tok[last] == b'a' { b'b' } else { b'a' };
        assert!(!github_crc32(&tok));
    }

    #[test]
    fn jwt_header() {
        assert!(jwt(
            b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.sig"
        ));
        assert!(!jwt(b"eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.sig"));
    }

    #[test]
    fn entropy_and_filler() {
        assert!(entropy(b"aaaaaaaaaaaaaaaa") < 0.1);
        assert!(entropy(b"Tq7vLp2xW9mK4nR8") > 3.0);
        assert!(is_filler(b"abcdefghij123456"));
        assert!(is_filler(b"0123456789"));
        assert!(is_filler(b"abc1abc1abc1abc1"));
        assert!(!is_filler(b"Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB"));
    }

    #[test]
    fn secret_values() {
        assert!(secret_value(b"Tq7#vLp2xW9m"));
        assert!(secret_value(b"hunter2hunter42"));
        assert!(secret_value(b"WqxLMbTsQRvE"));
        assert!(!secret_value(b"getpass.getpass"));
        assert!(!secret_value(b"self._password"));
        assert!(!secret_value(b"DB_PASSWORD"));
        assert!(!secret_value(b"PasswordField"));
        assert!(!secret_value(b"password"));
        assert!(!secret_value(b"$DB_PASS_1"));
        assert!(!secret_value(b"aaaaaaaaA1"));
        assert!(!secret_value(b"/etc/app/secrets/key.pem"));
        assert!(!secret_value(b"https://example.org/reset"));
        assert!(!secret_value(b"config/Secrets.json"));
        assert!(!secret_value(b"anonymous@"));
        assert!(!secret_value(b"CFStringRef"));
        assert!(!secret_value(b"ZeroizeOnDrop"));
        assert!(!secret_value(b"_bindgen_ty_22"));
        assert!(secret_value(b"WqxMbTsQRvEk"));
    }

    #[test]
    fn key_names() {
        use KeyKind::*;
        for (k, want) in [
            ("password", Some(Password)),
            ("DB_PASSWORD", Some(Password)),
            ("dbPassword", Some(Password)),
            ("adminpassword", Some(Password)),
            ("client_secret", Some(Secret)),
            ("AUTH_CLIENTSECRET", Some(Secret)),
            ("alibabaToken", Some(Secret)),
            ("alibaba_token", Some(Secret)),
            ("ALIBABA_TOKEN", Some(Secret)),
            ("some_api_token_123", Some(Secret)),
            ("mySecretString", Some(Secret)),
            ("todo_secret_do_not_commit", Some(Secret)),
            ("private-key", Some(Secret)),
            ("x-api-key", Some(Secret)),
            ("APIKey", Some(Secret)),
            ("apikey", Some(Secret)),
            ("creds", Some(Secret)),
            ("credentials", Some(Secret)),
            ("_authToken", Some(Secret)),
            ("auth", Some(Auth)),
            ("user_auth", Some(Auth)),
            (
                "cas.authn.azure-active-directory.client-secret",
                Some(Secret),
            ),
            ("数据库密码", Some(Password)),
            ("io.jsonwebtoken", None),
            ("password.translate", None),
            ("spring.datasource.password", Some(Password)),
            ("secret.key", Some(Secret)),
            ("author", None),
            ("auth_url", None),
            ("public_key", None),
            ("primaryKey", None),
            ("csrf-token", None),
            ("max_tokens", None),
            ("token_url", None),
            ("secret_name", None),
            ("LLM_SECRET_NAME", None),
            ("keyboard", None),
            ("key", None),
            ("eos_token", None),
            ("access_token_url", None),
            ("clientId", None),
        ] {
            assert_eq!(key_kind(k.as_bytes()), want, "{k}");
        }
    }

    #[test]
    fn values() {
        assert!(token_value(b"Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB"));
        assert!(token_value(b"dafa7817-e246-48f3-91a7-e87653d587b8"));
        assert!(!token_value(b"KspGetTokenFn"));
        assert!(!token_value(b"os.environ"));
        assert!(!token_value(b"my-service-name"));
        assert!(!token_value(b"abcdefghij123456"));
        assert!(!token_value(b"${API_TOKEN}"));
        assert!(!token_value(b"__X32_SYSCALL_BIT"));
        assert!(!token_value(b"_bindgen_ty_5"));
        assert!(!token_value(b"D3DKMT_PRESENTHISTORYTOKEN_0"));
        assert!(token_value(b"e3czlitybkm03cj7yhzlv7iqpvdcjz5g"));
        assert!(token_value(b"9f3a7c2e1b8d4f6a0c5e7b9d2f4a6c8e1b3d5f7a"));
        assert!(!token_value(b"x25519_generate_private_key"));
        assert!(!token_value(b"Curve25519SeedBin"));
        assert!(base64_userpass(b"dXNlcjpwYXNzd29yZA=="));
        assert!(assignment(b"password = ", b"Tq7#vLp2xW9m"));
        assert!(assignment(b"password is ", b"Tq7#vLp2xW9m"));
        assert!(assignment("数据库密码：".as_bytes(), b"WinterVzEmtQmbhn"));
        assert!(!assignment(b"password: ", b"SpChangeAccountPasswordFn"));
        assert!(!assignment(b"two-pass ", b"memchr2+SWAR"));
        assert!(!assignment(b"auth ", b"certificate/keys"));
        assert!(!assignment(
            b"generate_private_key: ",
            b"x25519_generate_private_key"
        ));
        assert!(!assignment(
            b"STATUS_INVALID_TOKEN: NTSTATUS = ",
            b"-1073740699i32"
        ));
        assert!(!assignment(b".passphrase(\"", b"password123"));
        assert!(!assignment(b"password=", b"self.password"));
        assert!(!assignment(b"secret_name = ", b"NEXUS-GPT4-API-KEY"));
    }
}
