//! Length-prefixed framing of control messages on a byte stream.
//!
//! A frame is a LEB128 varint length followed by that many bytes of postcard. [`FrameDecoder`] is
//! sans-IO: feed it whatever bytes arrived with [`FrameDecoder::push`], then take whole messages
//! out with [`FrameDecoder::poll_message`]. A length over [`MAX_CONTROL_MESSAGE`] is refused
//! before any body is buffered.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits::MAX_CONTROL_MESSAGE;
use crate::message::{FromRelay, ToRelay};
use crate::{Error, Result};

/// A control message: serializable and checkable against the limits.
pub trait Message: Serialize + DeserializeOwned {
    /// Checks every field against [`crate::limits`].
    fn validate(&self) -> Result<()>;
}

impl Message for ToRelay {
    fn validate(&self) -> Result<()> {
        ToRelay::validate(self)
    }
}

impl Message for FromRelay {
    fn validate(&self) -> Result<()> {
        FromRelay::validate(self)
    }
}

/// Validates one message and encodes it as a frame (length prefix + body), appending to `out`.
pub fn encode_into<M: Message>(message: &M, out: &mut Vec<u8>) -> Result<()> {
    message.validate()?;
    let body = postcard::to_allocvec(message).map_err(|_| Error::Malformed("unencodable"))?;
    if body.len() > MAX_CONTROL_MESSAGE {
        return Err(Error::TooLarge {
            field: "control message",
            len: body.len(),
            max: MAX_CONTROL_MESSAGE,
        });
    }
    let mut len = body.len() as u32;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&body);
    Ok(())
}

/// Encodes one message as a frame.
pub fn encode<M: Message>(message: &M) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Decodes one message body (without the length prefix) and validates it.
pub fn decode_body<M: Message>(body: &[u8]) -> Result<M> {
    let message: M = postcard::from_bytes(body).map_err(|_| Error::Malformed("bad body"))?;
    message.validate()?;
    Ok(message)
}

/// Reassembles frames from a byte stream.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    failed: bool,
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    ///
    /// After an error the stream is out of sync and every later call returns the error again.
    pub fn poll_message<M: Message>(&mut self) -> Result<Option<M>> {
        if self.failed {
            return Err(Error::Malformed("stream out of sync"));
        }
        let result = self.try_message();
        if result.is_err() {
            self.failed = true;
            self.buffer.clear();
        }
        result
    }

    fn try_message<M: Message>(&mut self) -> Result<Option<M>> {
        let mut len: usize = 0;
        let mut prefix = 0;
        loop {
            let Some(&byte) = self.buffer.get(prefix) else {
                return Ok(None);
            };
            if prefix == 4 {
                return Err(Error::Malformed("length prefix too long"));
            }
            len |= usize::from(byte & 0x7f) << (7 * prefix);
            prefix += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if len > MAX_CONTROL_MESSAGE {
            return Err(Error::TooLarge {
                field: "control message",
                len,
                max: MAX_CONTROL_MESSAGE,
            });
        }
        if self.buffer.len() < prefix + len {
            return Ok(None);
        }
        let message = decode_body(&self.buffer[prefix..prefix + len]);
        self.buffer.drain(..prefix + len);
        message.map(Some)
    }
}
