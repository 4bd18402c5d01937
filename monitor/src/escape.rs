//! Text a peer chose (SNI, ALPN), made safe to show.
//!
//! Anyone who can open a TLS connection to a host tlsmon watches picks
//! these bytes, and tlsmon shows them to a root operator's terminal. A
//! host name of `ESC ] 52 ; c ; … BEL` would otherwise write the clipboard,
//! `ESC [ 2 J` clear the screen, a right-to-left override reorder what a
//! line says. So every such string is escaped once, where it enters the
//! tracker, and every view (dashboard, text log, JSON lines, metric
//! labels) gets the same safe text:
//!
//! - bytes that are not UTF-8 as `\xNN` (Zeek's convention for its logs);
//! - control characters (C0, DEL, C1), format characters (Unicode category
//!   Cf: bidirectional overrides and isolates, zero-width characters,
//!   invisible operators, tags) and the line and paragraph separators as
//!   `\u{XXXX}`;
//! - the backslash itself as `\\`, so an escape cannot be forged;
//! - everything else as it is.
//!
//! The result is bounded: at most [`MAX_SHOWN`] characters, ending in `…`
//! when cut.

/// Characters of escaped text kept; the kernel already bounds what it
/// copies (64 bytes of SNI, 16 of ALPN), and escaping can make each byte
/// four characters.
pub const MAX_SHOWN: usize = 256;

/// `bytes` as text that is safe to print anywhere; see the module docs.
#[must_use]
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut shown = 0usize;
    let mut push = |piece: &str, out: &mut String| -> bool {
        let n = piece.chars().count();
        if shown + n > MAX_SHOWN {
            out.push('…');
            return false;
        }
        shown += n;
        out.push_str(piece);
        true
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let piece = if c == '\\' {
                "\\\\".to_owned()
            } else if unsafe_char(c) {
                format!("\\u{{{:04x}}}", u32::from(c))
            } else {
                c.to_string()
            };
            if !push(&piece, &mut out) {
                return out;
            }
        }
        for b in chunk.invalid() {
            if !push(&format!("\\x{b:02x}"), &mut out) {
                return out;
            }
        }
    }
    out
}

/// Control (Cc), format (Cf) and separator (Zl, Zp) characters: the ones
/// that move the cursor, change how a terminal or a line is read, or are
/// invisible.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(u32::from(c),
            0x00ad
            | 0x0600..=0x0605
            | 0x061c
            | 0x06dd
            | 0x070f
            | 0x0890..=0x0891
            | 0x08e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x2028..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_are_shown_not_sent() {
        let sni = b"\x1b]0;X\x07\x1b[2J\x1b]52;c;aGk=\x07";
        let shown = escape(sni);
        assert_eq!(
            shown,
            "\\u{001b}]0;X\\u{0007}\\u{001b}[2J\\u{001b}]52;c;aGk=\\u{0007}"
        );
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn c1_bidi_and_invalid_bytes_are_escaped() {
        // U+009B is the one-character CSI; U+202E reverses what follows.
        assert_eq!(escape("a\u{9b}2J".as_bytes()), "a\\u{009b}2J");
        assert_eq!(
            escape("evil\u{202e}moc.com".as_bytes()),
            "evil\\u{202e}moc.com"
        );
        assert_eq!(escape(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(
            escape("\u{2066}x\u{2069}".as_bytes()),
            "\\u{2066}x\\u{2069}"
        );
    }

    #[test]
    fn escapes_cannot_be_forged_and_plain_names_are_untouched() {
        assert_eq!(escape(b"a\\x1b"), "a\\\\x1b");
        assert_eq!(escape(b"backend-1.example.com"), "backend-1.example.com");
        assert_eq!(escape("bücher.example".as_bytes()), "bücher.example");
        assert_eq!(escape(b""), "");
    }

    #[test]
    fn length_is_bounded() {
        let long = escape(&[0x1b; 4096]);
        assert!(long.chars().count() <= MAX_SHOWN + 1, "{}", long.len());
        assert!(long.ends_with('…'));
    }
}
