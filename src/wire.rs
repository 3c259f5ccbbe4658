//! What arrives on a connection, whoever speaks it: an optional PROXY
//! header, then HTTP/1.x request heads or uwsgi packets. [`Wire::decode`]
//! turns the bytes into one [`Incoming`] value that carries everything
//! later stages need to know of the protocol — the client, the scheme, and
//! whether the connection carries only this request — so this is the one
//! place where HTTP, uwsgi and the PROXY header differ: the worker and
//! `wsgi` never ask which protocol they serve.
//!
//! Layers, in the order the bytes meet them: [`Stage::ProxyHeader`] (when
//! the peer is one whose PROXY header is believed), then
//! [`Stage::Requests`]. A TLS handshake would be one more stage between
//! the two, decrypting into the same buffer.
//!
//! Pure, like the parsers it drives: bytes in, `Partial`, a request or a
//! [`Refusal`] out; no socket and no Python.

use crate::config::{Config, HeaderMap, Protocol, ProxyProtocol};
use crate::http::{self, HttpError, Parse, Request};
use crate::net::Peer;
use crate::uwsgi::{self, UwsgiError};

/// One request and what the protocol that carried it says about it.
#[derive(Debug)]
pub struct Incoming {
    /// The request head, from HTTP or uwsgi alike.
    pub request: Request,
    /// The client as the app sees it (REMOTE_ADDR): the socket's peer, the
    /// client a PROXY header named, or the one a uwsgi front end names.
    pub client: Peer,
    /// The client came over https, as a trusted proxy or the uwsgi front
    /// end says (`wsgi.url_scheme`).
    pub https: bool,
    /// The connection carries this one request, and the response ends at
    /// the close (never chunked): how a uwsgi front end reads it.
    pub one_shot: bool,
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Answered with this error's status, then the connection is closed.
    Status(HttpError),
    /// Not something rwsgi can answer in the protocol spoken: the
    /// connection is closed, and the reason logged.
    Close(&'static str),
}

impl From<HttpError> for Refusal {
    fn from(e: HttpError) -> Self {
        Refusal::Status(e)
    }
}

impl From<UwsgiError> for Refusal {
    fn from(e: UwsgiError) -> Self {
        match e {
            UwsgiError::Http(e) => Refusal::Status(e),
            UwsgiError::Malformed(why) => Refusal::Close(why),
        }
    }
}

/// Where a connection's decoding stands, and what it has learned of its
/// client so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A PROXY protocol header is due before the first request.
    ProxyHeader,
    /// Requests follow, from this client (the socket's peer, or the one
    /// the PROXY header named).
    Requests(Peer),
}

/// The decoding rules of one worker, from its settings.
pub struct Wire<'a> {
    cfg: &'a Config,
}

impl<'a> Wire<'a> {
    /// The rules `cfg` sets.
    pub fn new(cfg: &'a Config) -> Self {
        Wire { cfg }
    }

    /// The most bytes a connection may buffer before its next request is
    /// whole: the largest head either protocol allows, after the largest
    /// PROXY header.
    pub fn max_head(&self) -> usize {
        http::max_head_len(&self.cfg.limits).max(uwsgi::MAX_PACKET_HEAD).saturating_add(crate::proxy::MAX_HEADER_LEN)
    }

    /// Where a new connection from `peer` starts: a PROXY header is read
    /// only from the peers allowed to send one.
    pub fn first_stage(&self, peer: Peer) -> Stage {
        let cfg = self.cfg;
        if cfg.proxy_protocol != ProxyProtocol::Off && cfg.proxy_allow.allows(peer.ip()) {
            Stage::ProxyHeader
        } else {
            Stage::Requests(peer)
        }
    }

    /// Decode the next request at the start of `buf`, consuming a PROXY
    /// header (and, for HTTP, empty lines before a request line) on the
    /// way. `peer` is the socket's peer, which trust decisions look at.
    /// `Partial` asks for more bytes (an empty `buf` is `Partial` too).
    pub fn decode(&self, stage: &mut Stage, buf: &mut Vec<u8>, peer: Peer) -> Result<Parse<Incoming>, Refusal> {
        if *stage == Stage::ProxyHeader {
            match crate::proxy::parse(buf, self.cfg.proxy_protocol) {
                Ok(Parse::Complete(header)) => {
                    buf.drain(..header.len);
                    *stage = Stage::Requests(header.source.map_or(peer, Peer::Tcp));
                }
                Ok(Parse::Partial) => return Ok(Parse::Partial),
                Err(e) => return Err(Refusal::Close(e.0)),
            }
        }
        let Stage::Requests(client) = *stage else { return Ok(Parse::Partial) };
        match self.cfg.protocol {
            Protocol::Http => self.decode_http(buf, peer, client),
            Protocol::Uwsgi => self.decode_uwsgi(buf, peer, client),
        }
    }

    fn decode_http(&self, buf: &mut Vec<u8>, peer: Peer, client: Peer) -> Result<Parse<Incoming>, Refusal> {
        // RFC 9112 §2.2: empty lines before a request line are ignored;
        // drop them here so they cannot fill the buffer.
        let blank = buf.chunks_exact(2).take_while(|pair| *pair == b"\r\n").count() * 2;
        buf.drain(..blank);
        if buf.is_empty() {
            return Ok(Parse::Partial);
        }
        let Parse::Complete(mut request) = http::parse_request(buf, &self.cfg.limits)? else {
            return Ok(Parse::Partial);
        };
        // Scheme headers and forwarder headers count only from a trusted
        // proxy (the socket's peer, not a client it names).
        let trusted = self.cfg.forwarded_allow.allows(peer.ip());
        let https = trusted && http::forwarded_scheme_is_secure(&request, &self.cfg.secure_scheme_headers)?.unwrap_or(false);
        self.apply_header_map(&mut request, trusted)?;
        self.check_body_limit(&request)?;
        Ok(Parse::Complete(Incoming { request, client, https, one_shot: false }))
    }

    /// Header names with `_`, which would collide with dashed ones in the
    /// environ (`X_Forwarded_For` and `X-Forwarded-For`): those a trusted
    /// proxy may send (`--forwarder-headers`) stay; the others are
    /// dropped, refused or kept as `--header-map` says.
    fn apply_header_map(&self, request: &mut Request, trusted: bool) -> Result<(), HttpError> {
        let forwarders = &self.cfg.forwarder_headers;
        let forwarded = |name: &str| trusted && forwarders.iter().any(|f| f == "*" || f.eq_ignore_ascii_case(name));
        let unwanted = |h: &http::Header| h.name.contains('_') && !forwarded(&h.name);
        match self.cfg.header_map {
            HeaderMap::Dangerous => {}
            HeaderMap::Refuse if request.headers.iter().any(unwanted) => return Err(HttpError::UnderscoreInHeaderName),
            HeaderMap::Refuse => {}
            HeaderMap::Drop => request.headers.retain(|h| !unwanted(h)),
        }
        Ok(())
    }

    /// `--limit-request-body`: a body said to be larger is refused before
    /// the app is called (a chunked one is counted as it is read).
    fn check_body_limit(&self, request: &Request) -> Result<(), HttpError> {
        match (request.framing, self.cfg.limit_request_body) {
            (http::BodyFraming::Length(n), Some(limit)) if n > limit => Err(HttpError::ContentTooLarge),
            _ => Ok(()),
        }
    }

    fn decode_uwsgi(&self, buf: &[u8], peer: Peer, client: Peer) -> Result<Parse<Incoming>, Refusal> {
        if !self.cfg.uwsgi_allow.allows(peer.ip()) {
            // Debug, not warning: any host that reaches the port could
            // fill the log.
            log::debug!("refusing a uwsgi request from {peer} (not in --uwsgi-allow-from)");
            return Err(HttpError::Forbidden.into());
        }
        if buf.is_empty() {
            return Ok(Parse::Partial);
        }
        let Parse::Complete(request) = uwsgi::parse_packet(buf, &self.cfg.limits)? else {
            return Ok(Parse::Partial);
        };
        self.check_body_limit(&request)?;
        Ok(Parse::Complete(Incoming {
            // The front end names the client in REMOTE_ADDR/REMOTE_PORT.
            client: uwsgi::client(&request).map_or(client, Peer::Tcp),
            // The front end's own variables say; the client's X-Forwarded-*
            // headers reach rwsgi untouched through uwsgi_params.
            https: uwsgi::is_https(&request),
            one_shot: true,
            request,
        }))
    }
}
