//! HTTP digest authentication (RFC 7616) for cameras whose notification settings offer only a
//! user name and a password and answer a `Digest` challenge (many Hikvision and Dahua devices
//! do). The IOC never learns the camera system's key from a digest answer, so a system that
//! signs in this way is configured with its user name and `H(user:realm:key)` (MD5 and SHA-256,
//! both printed by `ioc token --digest-user NAME`), not only the key's SHA-256.
//!
//! Nonces carry their issue time and a keyed hash of it, so any ingest instance given the same
//! `ingest.digest_secret` accepts a nonce another issued, without shared state; a nonce older
//! than [`NONCE_LIFETIME`] is answered with a fresh challenge marked `stale=true`, which
//! devices follow without asking anyone for the password again. Only `qop=auth` is offered.

use std::time::Duration;

use sha2::Digest as _;

/// The realm in every challenge; part of the stored `H(user:realm:key)`.
pub const REALM: &str = "ioc";
/// How long a nonce is accepted after it was issued.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// The two hash algorithms devices use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn from_name(name: Option<&str>) -> Option<Algorithm> {
        match name.map(|n| n.trim_matches('"')) {
            None => Some(Algorithm::Md5),
            Some(n) if n.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(n) if n.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lowercase hex of the hash of `text`.
    pub fn hex(self, text: &str) -> String {
        let bytes: Vec<u8> = match self {
            Algorithm::Md5 => md5::Md5::digest(text.as_bytes()).to_vec(),
            Algorithm::Sha256 => sha2::Sha256::digest(text.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `H(user:realm:key)`, the form a digest login is configured in.
pub fn ha1(algorithm: Algorithm, user: &str, key: &str) -> String {
    algorithm.hex(&format!("{user}:{REALM}:{key}"))
}

/// A device's answer to a challenge: the fields of its `Authorization: Digest ...` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: String,
    pub nc: String,
    pub cnonce: String,
    pub algorithm: Algorithm,
}

/// Reads `Digest k="v", k=v, ...`; `None` when it is not a digest answer with every field
/// `qop=auth` needs, or names an algorithm we do not offer.
pub fn parse(header: &str) -> Option<Answer> {
    let rest = header.trim().strip_prefix("Digest ")?;
    let mut fields = std::collections::HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (name, after) = s.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (quoted[..end].to_string(), &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        fields.insert(name, value);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    let mut take = |k: &str| fields.remove(k);
    let algorithm = Algorithm::from_name(take("algorithm").as_deref())?;
    let answer = Answer {
        username: take("username")?,
        realm: take("realm")?,
        nonce: take("nonce")?,
        uri: take("uri")?,
        response: take("response")?.to_ascii_lowercase(),
        qop: take("qop")?,
        nc: take("nc")?,
        cnonce: take("cnonce")?,
        algorithm,
    };
    (answer.qop == "auth").then_some(answer)
}

/// The `response` a device that knows the key computes for `method` (RFC 7616 §3.4.1, `qop=auth`).
pub fn expected(answer: &Answer, ha1: &str, method: &str) -> String {
    let ha2 = answer.algorithm.hex(&format!("{method}:{}", answer.uri));
    answer.algorithm.hex(&format!(
        "{ha1}:{}:{}:{}:{}:{ha2}",
        answer.nonce, answer.nc, answer.cnonce, answer.qop
    ))
}

/// Issues and checks nonces.
pub struct Nonces {
    secret: String,
}

/// Why a nonce was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum NonceProblem {
    /// Issued by us, but too long ago: the device should answer a fresh challenge.
    Stale,
    /// Not one of ours.
    Forged,
}

impl Nonces {
    /// With `secret` (shared by ingest instances behind one address), or one made up for this
    /// process.
    pub fn new(secret: Option<&str>) -> Nonces {
        let secret = secret
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        Nonces { secret }
    }

    fn seal(&self, issued: u64) -> String {
        Algorithm::Sha256.hex(&format!("{}:{issued}", self.secret))[..32].to_string()
    }

    /// A nonce issued at `now` (seconds since the epoch).
    pub fn issue(&self, now: u64) -> String {
        format!("{now:x}.{}", self.seal(now))
    }

    /// Whether `nonce` is one of ours and still fresh at `now`.
    pub fn check(&self, nonce: &str, now: u64) -> Result<(), NonceProblem> {
        let (issued, seal) = nonce.split_once('.').ok_or(NonceProblem::Forged)?;
        let issued = u64::from_str_radix(issued, 16).map_err(|_| NonceProblem::Forged)?;
        if !same(seal, &self.seal(issued)) {
            return Err(NonceProblem::Forged);
        }
        if issued > now + 5 || now - issued > NONCE_LIFETIME.as_secs() {
            return Err(NonceProblem::Stale);
        }
        Ok(())
    }

    /// The `WWW-Authenticate` values of a digest challenge, SHA-256 first (RFC 7616 §3.7).
    pub fn challenges(&self, now: u64, stale: bool) -> Vec<String> {
        let nonce = self.issue(now);
        let stale = if stale { ", stale=true" } else { "" };
        [Algorithm::Sha256, Algorithm::Md5]
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{REALM}\", qop=\"auth\", algorithm={}, nonce=\"{nonce}\"{stale}",
                    a.name()
                )
            })
            .collect()
    }
}

/// Compares two hex strings without stopping at the first difference.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 7616 §3.9.1 (user "Mufasa", password "Circle of Life").
    #[test]
    fn the_rfc_example_computes_the_rfc_responses() {
        let header = |alg: &str| {
            format!(
                "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", \
                 algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
                 cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
                 response=\"x\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        for (alg, want) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let answer = parse(&header(alg)).expect("a digest answer");
            let ha1 = answer
                .algorithm
                .hex("Mufasa:http-auth@example.org:Circle of Life");
            assert_eq!(expected(&answer, &ha1, "GET"), want, "{alg}");
        }
    }

    #[test]
    fn answers_without_what_qop_auth_needs_are_not_read() {
        assert_eq!(parse("Basic abc"), None);
        assert_eq!(
            parse("Digest username=\"a\", realm=\"ioc\", nonce=\"n\", uri=\"/\", response=\"r\""),
            None,
            "no qop: the RFC 2069 form is not offered"
        );
        assert_eq!(
            parse("Digest username=\"a\", realm=\"ioc\", nonce=\"n\", uri=\"/\", response=\"r\", qop=auth, nc=1, cnonce=c, algorithm=SHA-512-256"),
            None
        );
        assert_eq!(parse("Digest username=\"unterminated"), None);
    }

    #[test]
    fn nonces_are_ours_and_fresh_or_refused() {
        let nonces = Nonces::new(Some("shared"));
        let nonce = nonces.issue(1_000_000);
        assert_eq!(nonces.check(&nonce, 1_000_100), Ok(()));
        assert_eq!(
            Nonces::new(Some("shared")).check(&nonce, 1_000_100),
            Ok(()),
            "another instance with the same secret"
        );
        assert_eq!(
            nonces.check(&nonce, 1_000_000 + NONCE_LIFETIME.as_secs() + 1),
            Err(NonceProblem::Stale)
        );
        assert_eq!(
            Nonces::new(Some("other")).check(&nonce, 1_000_100),
            Err(NonceProblem::Forged)
        );
        let tampered = format!("{:x}.{}", 2_000_000u64, nonce.split_once('.').unwrap().1);
        assert_eq!(
            nonces.check(&tampered, 2_000_000),
            Err(NonceProblem::Forged)
        );
        assert_eq!(nonces.check("garbage", 0), Err(NonceProblem::Forged));
    }
}
