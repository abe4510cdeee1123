//! An accepted connection made plain or TLS by the listener's mode, or refused with a reason.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use model::typed::TlsMode;
use rustls::CertificateError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{PeerIdentity, ServerTls};

/// The first byte of every TLS connection: a handshake record's content type.
const TLS_HANDSHAKE: u8 = 0x16;

/// Why a connection was refused: the `reason` label of `aviary_proxy_tls_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Plain text on a STRICT listener.
    PlainTextInStrict,
    /// The handshake failed for a reason other than the peer's certificate (protocol, alert
    /// from the peer, reset).
    HandshakeFailed,
    /// The peer's certificate does not chain to the trust.
    UnknownCa,
    /// The peer's certificate chains but is not usable (expired, wrong usage, bad signature).
    BadCertificate,
    /// The peer's certificate names none of the allowed SANs (or not the expected node).
    SanNotAllowed,
    /// A listener that validates clients got a client without a certificate.
    NoClientCertificate,
    /// We have no valid certificate of our own to present (the mesh identity expired while
    /// renewals failed): we fail closed.
    NoLocalCertificate,
    /// Nothing, or no complete handshake, within the handshake timeout.
    Timeout,
    /// The peer closed before sending anything.
    Closed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PlainTextInStrict => "plain_text_in_strict",
            Refusal::HandshakeFailed => "handshake_failed",
            Refusal::UnknownCa => "unknown_ca",
            Refusal::BadCertificate => "bad_certificate",
            Refusal::SanNotAllowed => "san_not_allowed",
            Refusal::NoClientCertificate => "no_client_certificate",
            Refusal::NoLocalCertificate => "no_local_certificate",
            Refusal::Timeout => "timeout",
            Refusal::Closed => "closed",
        }
    }

    /// The reason rustls's error stands for, as precisely as its error says.
    pub fn of(error: &rustls::Error) -> Refusal {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                Refusal::UnknownCa
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => Refusal::SanNotAllowed,
            rustls::Error::InvalidCertificate(_) => Refusal::BadCertificate,
            rustls::Error::NoCertificatesPresented => Refusal::NoClientCertificate,
            // What rustls says when our resolver has no certificate to offer.
            rustls::Error::General(message) if message.contains("certificate chain resolved") => {
                Refusal::NoLocalCertificate
            }
            _ => Refusal::HandshakeFailed,
        }
    }
}

/// A refused connection: the reason, and what happened, for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Refused {
    pub reason: Refusal,
    pub detail: String,
}

impl Refused {
    pub fn new(reason: Refusal, detail: String) -> Refused {
        Refused { reason, detail }
    }

    /// tokio-rustls hands rustls's errors back inside an `io::Error`.
    pub fn from_io(error: &io::Error) -> Refused {
        let reason = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map_or(Refusal::HandshakeFailed, Refusal::of);
        Refused::new(reason, error.to_string())
    }
}

/// An accepted connection, plain or TLS; usable with hyper through `hyper_util::rt::TokioIo`.
#[derive(Debug)]
pub enum Accepted {
    Plain(TcpStream),
    Tls {
        stream: Box<tokio_rustls::server::TlsStream<TcpStream>>,
        /// The client certificate's names, when the listener asked for one.
        peer: Option<PeerIdentity>,
    },
}

impl Accepted {
    pub fn is_tls(&self) -> bool {
        matches!(self, Accepted::Tls { .. })
    }

    /// The verified client identity (mutual TLS only).
    pub fn peer(&self) -> Option<&PeerIdentity> {
        match self {
            Accepted::Plain(_) => None,
            Accepted::Tls { peer, .. } => peer.as_ref(),
        }
    }
}

/// Makes `stream` what `tls` says the listener speaks. DISABLED reads nothing. STRICT and
/// PERMISSIVE look at the first byte without consuming it (waiting at most the handshake
/// timeout, so a silent client is dropped): a TLS handshake record is a handshake, anything
/// else is plain text, which only PERMISSIVE accepts. The handshake itself shares the same
/// deadline.
pub async fn accept(stream: TcpStream, tls: &ServerTls) -> Result<Accepted, Refused> {
    let Some(config) = tls.config.clone().filter(|_| tls.mode != TlsMode::Disabled) else {
        return Ok(Accepted::Plain(stream));
    };
    let deadline = tokio::time::Instant::now() + tls.handshake_timeout;
    let timeout = || {
        Refused::new(
            Refusal::Timeout,
            format!("nothing within {:?}", tls.handshake_timeout),
        )
    };
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first))
        .await
        .map_err(|_| timeout())?;
    match peeked {
        Err(error) => return Err(Refused::new(Refusal::Closed, error.to_string())),
        Ok(0) => {
            return Err(Refused::new(
                Refusal::Closed,
                "closed before sending".into(),
            ));
        }
        Ok(_) if first[0] == TLS_HANDSHAKE => {}
        Ok(_) if tls.mode == TlsMode::Permissive => return Ok(Accepted::Plain(stream)),
        Ok(_) => {
            return Err(Refused::new(
                Refusal::PlainTextInStrict,
                format!("first byte {:#04x}, not a TLS handshake", first[0]),
            ));
        }
    }
    if let Some(resolver) = &tls.resolver
        && !resolver.has_current()
    {
        return Err(Refused::new(
            Refusal::NoLocalCertificate,
            format!(
                "{}: no valid certificate of our own to present",
                resolver.name()
            ),
        ));
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = tokio::time::timeout_at(deadline, acceptor.accept(stream))
        .await
        .map_err(|_| timeout())?
        .map_err(|error| Refused::from_io(&error))?;
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(PeerIdentity::of);
    Ok(Accepted::Tls {
        stream: Box::new(stream),
        peer,
    })
}

impl AsyncRead for Accepted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Accepted::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Accepted::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Accepted::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Accepted::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Accepted::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Accepted::Plain(stream) => stream.is_write_vectored(),
            Accepted::Tls { stream, .. } => stream.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests;
