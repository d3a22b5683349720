//! The IRC protocol: RFC 1459/2812 framing with IRCv3 message tags.

pub mod message;
