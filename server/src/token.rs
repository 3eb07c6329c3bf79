//! Access tokens: who may join which room, as whom, and do what.
//!
//! A token is a PASETO `v4.public` token: JSON claims signed with the issuer's Ed25519 key. The
//! relay holds only the issuer's public key ([`Verifier`]), so a relay broken into cannot mint a
//! token; whoever holds the secret key ([`IssuerKey`], `rotunda-relay keygen`) mints them
//! (`rotunda-relay token`). Keys are stored as PASERK strings (`k4.secret.…`, `k4.public.…`).
//!
//! The claims: `sub` (the identity), `room`, an optional `name` (the name the room shows;
//! without it, the one the joiner gives), `iat`, `nbf` and `exp` (RFC 3339, UTC), and `grants`
//! (`publish`, `subscribe`, `chat`). The signature also covers an implicit assertion naming
//! Rotunda, so a token minted for something else with the same key does not pass here.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use pasetors::Public;
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::paserk::FormatAsPaserk;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use rotunda_proto::limits::{MAX_DISPLAY_NAME, MAX_IDENTITY, MAX_TOKEN, check_str};
use rotunda_proto::room::Admission;
use rotunda_proto::{ErrorCode, Grants};
use serde::{Deserialize, Serialize};

/// Signed along with every token: a token signed by the same key for another purpose is not
/// one of ours.
const IMPLICIT: &[u8] = b"rotunda access token v1";

/// How far the relay's clock and the issuer's may disagree: a token this far before its start
/// or past its end still passes.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The longest a token may live (from its start to its end).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Who may join: what a relay asks of a join.
#[derive(Debug, Clone)]
pub enum Access {
    /// Anyone, any room, doing anything (development on loopback).
    Open,
    /// Whoever carries this one string (development; everyone may do everything).
    Shared(String),
    /// Whoever carries a token the issuer signed, doing what it grants.
    Signed(Verifier),
}

impl Access {
    /// Who a join of `room` as `name` carrying `token` admits, at `now`.
    pub fn admit(
        &self,
        room: &str,
        name: &str,
        token: Option<&str>,
        now: SystemTime,
    ) -> Result<Admission, Refusal> {
        match self {
            Access::Open => Ok(Admission::open(name)),
            Access::Shared(secret) => match token {
                Some(token) if token == secret => Ok(Admission::open(name)),
                Some(_) => Err(Refusal::Forged),
                None => Err(Refusal::Missing),
            },
            Access::Signed(verifier) => {
                verifier.verify(token.ok_or(Refusal::Missing)?, room, name, now)
            }
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    /// The identity.
    sub: String,
    /// The one room it opens.
    room: String,
    /// The name the room shows, when the issuer chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Issued at.
    iat: String,
    /// Not before.
    nbf: String,
    /// Expires.
    exp: String,
    /// What its holder may do.
    grants: Grants,
}

/// What to mint a token for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The room it opens.
    pub room: String,
    /// Who holds it.
    pub identity: String,
    /// The name the room shows (else the one the holder gives).
    pub name: Option<String>,
    /// How long it stays valid from now.
    pub ttl: Duration,
    /// What its holder may do.
    pub grants: Grants,
}

/// Why a token was refused. The peer hears only [`Refusal::code`]; the log says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The relay asks for a token and the join carried none.
    #[error("no token")]
    Missing,
    /// Not a `v4.public` token, or its claims are not ours.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Not signed by the issuer's key.
    #[error("signature does not verify")]
    Forged,
    /// Past its end.
    #[error("expired at {0}")]
    Expired(String),
    /// Before its start.
    #[error("not valid before {0}")]
    NotYetValid(String),
    /// For another room.
    #[error("for room {0:?}")]
    WrongRoom(String),
}

impl Refusal {
    /// What the peer is told.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Missing | Refusal::Malformed(_) | Refusal::Forged => ErrorCode::Unauthorized,
            Refusal::Expired(_) => ErrorCode::TokenExpired,
            Refusal::NotYetValid(_) => ErrorCode::TokenNotYetValid,
            Refusal::WrongRoom(_) => ErrorCode::WrongRoom,
        }
    }
}

/// The issuer's secret key: it mints tokens.
pub struct IssuerKey(AsymmetricSecretKey<V4>);

impl IssuerKey {
    /// A new key pair.
    pub fn generate() -> anyhow::Result<(IssuerKey, Verifier)> {
        let pair = AsymmetricKeyPair::<V4>::generate()
            .map_err(|e| anyhow::anyhow!("generating an Ed25519 key pair: {e:?}"))?;
        Ok((IssuerKey(pair.secret), Verifier(pair.public)))
    }

    /// The key in a PASERK string (`k4.secret.…`).
    pub fn from_paserk(text: &str) -> anyhow::Result<Self> {
        AsymmetricSecretKey::<V4>::try_from(text.trim())
            .map(Self)
            .map_err(|_| anyhow::anyhow!("not a PASERK k4.secret key"))
    }

    /// Reads a key file written by [`IssuerKey::write`].
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the issuer key {}", path.display()))?;
        Self::from_paserk(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The key as a PASERK string.
    pub fn to_paserk(&self) -> String {
        paserk(&self.0)
    }

    /// Its public half, what relays hold.
    pub fn verifier(&self) -> anyhow::Result<Verifier> {
        AsymmetricPublicKey::<V4>::try_from(&self.0)
            .map(Verifier)
            .map_err(|e| anyhow::anyhow!("deriving the public key: {e:?}"))
    }

    /// Mints a token valid from `now` for `request.ttl`.
    pub fn sign(&self, request: &TokenRequest, now: SystemTime) -> anyhow::Result<String> {
        check_str("identity", &request.identity, MAX_IDENTITY, false)?;
        check_str(
            "room",
            &request.room,
            rotunda_proto::limits::MAX_ROOM_NAME,
            false,
        )?;
        if let Some(name) = &request.name {
            check_str("name", name, MAX_DISPLAY_NAME, false)?;
        }
        anyhow::ensure!(
            request.ttl > Duration::ZERO && request.ttl <= MAX_TTL,
            "a token lives between a second and {} days",
            MAX_TTL.as_secs() / 86_400
        );
        let claims = Claims {
            sub: request.identity.clone(),
            room: request.room.clone(),
            name: request.name.clone(),
            iat: timestamp(now),
            nbf: timestamp(now),
            exp: timestamp(now + request.ttl),
            grants: request.grants,
        };
        let payload = serde_json::to_vec(&claims)?;
        let token = PublicToken::sign(&self.0, &payload, None, Some(IMPLICIT))
            .map_err(|e| anyhow::anyhow!("signing: {e:?}"))?;
        anyhow::ensure!(
            token.len() <= MAX_TOKEN,
            "the token is {} bytes, over the {MAX_TOKEN} a join carries: shorten the names",
            token.len()
        );
        Ok(token)
    }

    /// Writes `PREFIX.key` (this key, readable by its owner only) and `PREFIX.pub` (the public
    /// half); refuses to overwrite either. Returns their paths.
    pub fn write(&self, prefix: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        let key = with_suffix(prefix, "key");
        let public = with_suffix(prefix, "pub");
        for path in [&key, &public] {
            anyhow::ensure!(
                !path.exists(),
                "{} exists: choose another --out, or move it away first",
                path.display()
            );
        }
        write_private(&key, &format!("{}\n", self.to_paserk()))?;
        std::fs::write(&public, format!("{}\n", self.verifier()?.to_paserk()))
            .with_context(|| format!("writing {}", public.display()))?;
        Ok((key, public))
    }
}

/// The issuer's public key: it checks tokens.
#[derive(Clone)]
pub struct Verifier(AsymmetricPublicKey<V4>);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_paserk())
    }
}

impl Verifier {
    /// The key in a PASERK string (`k4.public.…`).
    pub fn from_paserk(text: &str) -> anyhow::Result<Self> {
        AsymmetricPublicKey::<V4>::try_from(text.trim())
            .map(Self)
            .map_err(|_| anyhow::anyhow!("not a PASERK k4.public key"))
    }

    /// Reads a public key file (`PREFIX.pub` from `rotunda-relay keygen`).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the issuer's public key {}", path.display()))?;
        anyhow::ensure!(
            !text.contains("k4.secret"),
            "{} holds a secret key: give the relay the .pub file only",
            path.display()
        );
        Self::from_paserk(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The key as a PASERK string.
    pub fn to_paserk(&self) -> String {
        paserk(&self.0)
    }

    /// Checks `token` for a join of `room` at `now`: who it admits. `name` is the name the
    /// joiner gave, kept when the token names none.
    pub fn verify(
        &self,
        token: &str,
        room: &str,
        name: &str,
        now: SystemTime,
    ) -> Result<Admission, Refusal> {
        let untrusted = UntrustedToken::<Public, V4>::try_from(token)
            .map_err(|_| Refusal::Malformed("not a v4.public token"))?;
        let trusted = PublicToken::verify(&self.0, &untrusted, None, Some(IMPLICIT))
            .map_err(|_| Refusal::Forged)?;
        let claims: Claims = serde_json::from_str(trusted.payload())
            .map_err(|_| Refusal::Malformed("claims are not Rotunda's"))?;
        check_str("identity", &claims.sub, MAX_IDENTITY, false)
            .map_err(|_| Refusal::Malformed("identity empty or too long"))?;
        if let Some(name) = &claims.name {
            check_str("name", name, MAX_DISPLAY_NAME, false)
                .map_err(|_| Refusal::Malformed("name empty or too long"))?;
        }
        let start = parse_time(&claims.nbf)?;
        let end = parse_time(&claims.exp)?;
        if now + CLOCK_SKEW < start {
            return Err(Refusal::NotYetValid(claims.nbf));
        }
        if now > end + CLOCK_SKEW {
            return Err(Refusal::Expired(claims.exp));
        }
        if claims.room != room {
            return Err(Refusal::WrongRoom(claims.room));
        }
        Ok(Admission {
            name: claims.name.unwrap_or_else(|| name.to_owned()),
            identity: claims.sub,
            grants: claims.grants,
        })
    }
}

fn paserk(key: &impl FormatAsPaserk) -> String {
    let mut out = String::new();
    // Writing to a String does not fail.
    let _ = key.fmt(&mut out);
    out
}

fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn parse_time(text: &str) -> Result<SystemTime, Refusal> {
    humantime::parse_rfc3339_weak(text).map_err(|_| Refusal::Malformed("a time is not RFC 3339"))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut path = prefix.as_os_str().to_owned();
    path.push(".");
    path.push(suffix);
    PathBuf::from(path)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TokenRequest {
        TokenRequest {
            room: "standup".into(),
            identity: "ada@example.org".into(),
            name: Some("Ada".into()),
            ttl: Duration::from_secs(3600),
            grants: Grants {
                publish: true,
                subscribe: true,
                chat: false,
            },
        }
    }

    #[test]
    fn a_token_admits_its_identity_to_its_room_with_its_grants() {
        let (issuer, verifier) = IssuerKey::generate().expect("key pair");
        let now = SystemTime::now();
        let token = issuer.sign(&request(), now).expect("signs");
        assert!(token.starts_with("v4.public."), "{token}");
        let admitted = verifier
            .verify(&token, "standup", "whatever I typed", now)
            .expect("admits");
        assert_eq!(
            admitted,
            Admission {
                name: "Ada".into(),
                identity: "ada@example.org".into(),
                grants: request().grants,
            }
        );
        // Without a name in it, the joiner's own stays.
        let unnamed = issuer
            .sign(
                &TokenRequest {
                    name: None,
                    ..request()
                },
                now,
            )
            .expect("signs");
        let admitted = verifier
            .verify(&unnamed, "standup", "Ada L.", now)
            .expect("admits");
        assert_eq!(admitted.name, "Ada L.");
    }

    #[test]
    fn forged_expired_early_and_misdirected_tokens_are_refused_with_their_codes() {
        let (issuer, verifier) = IssuerKey::generate().expect("key pair");
        let (stranger, _) = IssuerKey::generate().expect("key pair");
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let check = |token: &str, room: &str| verifier.verify(token, room, "x", now);

        let forged = stranger.sign(&request(), now).expect("signs");
        assert_eq!(check(&forged, "standup"), Err(Refusal::Forged));
        let expired = issuer.sign(&request(), now - 2 * hour).expect("signs");
        assert_eq!(
            check(&expired, "standup").map_err(|r| r.code()),
            Err(ErrorCode::TokenExpired)
        );
        let early = issuer.sign(&request(), now + hour).expect("signs");
        assert_eq!(
            check(&early, "standup").map_err(|r| r.code()),
            Err(ErrorCode::TokenNotYetValid)
        );
        let token = issuer.sign(&request(), now).expect("signs");
        assert_eq!(
            check(&token, "retro"),
            Err(Refusal::WrongRoom("standup".into()))
        );
        assert_eq!(
            Refusal::WrongRoom(String::new()).code(),
            ErrorCode::WrongRoom
        );
        // Within the clock skew both ways, it still passes.
        let slightly_early = issuer
            .sign(&request(), now + CLOCK_SKEW / 2)
            .expect("signs");
        assert!(check(&slightly_early, "standup").is_ok());
        let just_ended = issuer
            .sign(&request(), now - hour - CLOCK_SKEW / 2)
            .expect("signs");
        assert!(check(&just_ended, "standup").is_ok());
        // Any byte changed breaks the signature (or the format).
        let mut bytes = token.clone().into_bytes();
        let at = "v4.public.".len() + 5;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(matches!(
            check(&tampered, "standup"),
            Err(Refusal::Forged | Refusal::Malformed(_))
        ));
        for junk in [
            "",
            "v4.public.",
            "v4.local.AAAA",
            "not a token",
            "v4.public.!!!!",
        ] {
            assert_eq!(
                check(junk, "standup").map_err(|r| r.code()),
                Err(ErrorCode::Unauthorized),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn keys_go_through_their_files_and_never_overwrite() {
        let dir = std::env::temp_dir().join(format!("rotunda-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let prefix = dir.join("issuer");
        let (issuer, _) = IssuerKey::generate().expect("key pair");
        let (key, public) = issuer.write(&prefix).expect("writes");
        assert_eq!(key, dir.join("issuer.key"));
        assert!(issuer.write(&prefix).is_err(), "an existing key is kept");
        let loaded = IssuerKey::load(&key).expect("loads");
        let verifier = Verifier::load(&public).expect("loads");
        let now = SystemTime::now();
        let token = loaded.sign(&request(), now).expect("signs");
        assert!(verifier.verify(&token, "standup", "x", now).is_ok());
        assert!(
            Verifier::load(&key).is_err(),
            "a relay is not given the secret key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the secret key is its owner's alone");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
