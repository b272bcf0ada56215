//! Authentication of peer (bus) connections with a cluster secret, without the secret on the
//! wire: a mutual challenge and response with HMAC-SHA256 when the connection opens, before
//! any raft message or snapshot byte is read.
//!
//! ```text
//! dialer  -> listener: "RRA1" | dialer nonce (32 bytes)
//! listener -> dialer : listener nonce (32) | HMAC(secret, "listener" | dialer nonce | listener nonce)
//! dialer  -> listener: HMAC(secret, "dialer" | listener nonce | dialer nonce)
//! ```
//!
//! Each side proves it knows the secret over a nonce the other just chose, so a recorded
//! handshake cannot be replayed, and a process that does not know the secret learns nothing
//! but two random nonces. A listener with a secret reads the first four bytes of a frame from a
//! dialer without one as the wrong magic; a dialer with a secret gets no answer from a listener
//! without one (which reads "RRA1" as an impossible frame length and closes): both fail closed.

use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MAGIC: &[u8; 4] = b"RRA1";
const NONCE: usize = 32;
const TAG: usize = 32;

/// How long a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A cluster secret, ready to sign.
#[derive(Clone)]
pub struct Secret {
    key: hmac::Key,
}

impl Secret {
    pub fn new(secret: &[u8]) -> Secret {
        Secret {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn tag(&self, role: &[u8], a: &[u8], b: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(role);
        ctx.update(a);
        ctx.update(b);
        ctx.sign()
    }

    fn verify(&self, role: &[u8], a: &[u8], b: &[u8], tag: &[u8]) -> bool {
        let msg = [role, a, b].concat();
        hmac::verify(&self.key, &msg, tag).is_ok()
    }
}

fn nonce() -> std::io::Result<[u8; NONCE]> {
    let mut n = [0u8; NONCE];
    SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    Ok(n)
}

fn refused(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_string())
}

/// The dialer's half: proves the secret to the listener and checks the listener knows it.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &Secret,
) -> std::io::Result<()> {
    let work = async {
        let mine = nonce()?;
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&mine);
        stream.write_all(&hello).await?;
        let mut answer = [0u8; NONCE + TAG];
        stream.read_exact(&mut answer).await?;
        let (theirs, tag) = answer.split_at(NONCE);
        if !secret.verify(b"listener", &mine, theirs, tag) {
            return Err(refused("the peer does not know the cluster secret"));
        }
        let proof = secret.tag(b"dialer", theirs, &mine);
        stream.write_all(proof.as_ref()).await?;
        Ok(())
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .map_err(|_| refused("the peer did not complete the bus handshake"))?
}

/// The listener's half: checks the dialer knows the secret (and proves it back).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &Secret,
) -> std::io::Result<()> {
    let work = async {
        let mut hello = [0u8; 4 + NONCE];
        stream.read_exact(&mut hello).await?;
        if &hello[..4] != MAGIC {
            return Err(refused("no bus handshake (the peer has no cluster secret)"));
        }
        let theirs = &hello[4..];
        let mine = nonce()?;
        let tag = secret.tag(b"listener", theirs, &mine);
        let mut answer = mine.to_vec();
        answer.extend_from_slice(tag.as_ref());
        stream.write_all(&answer).await?;
        let mut proof = [0u8; TAG];
        stream.read_exact(&mut proof).await?;
        if !secret.verify(b"dialer", &mine, theirs, &proof) {
            return Err(refused("the peer does not know the cluster secret"));
        }
        Ok(())
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .map_err(|_| refused("the peer did not complete the bus handshake"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (a.unwrap(), b.unwrap().0)
    }

    #[tokio::test]
    async fn the_same_secret_passes_and_another_fails_on_both_sides() {
        let (mut d, mut l) = pair().await;
        let s = Secret::new(b"one");
        let (a, b) = tokio::join!(dial(&mut d, &s), accept(&mut l, &s));
        assert!(a.is_ok() && b.is_ok());

        let (mut d, mut l) = pair().await;
        let other = Secret::new(b"two");
        let (a, b) = tokio::join!(dial(&mut d, &other), accept(&mut l, &s));
        assert!(
            a.is_err(),
            "the dialer must not trust a listener with another secret"
        );
        assert!(b.is_err());
    }

    #[tokio::test]
    async fn a_dialer_without_the_handshake_is_refused() {
        let (mut d, mut l) = pair().await;
        let s = Secret::new(b"one");
        let (_, b) = tokio::join!(
            async {
                d.write_all(&[0, 0, 0, 10]).await.unwrap();
                d.write_all(&[0u8; 64]).await.unwrap();
            },
            accept(&mut l, &s)
        );
        assert!(b.is_err());
    }
}
