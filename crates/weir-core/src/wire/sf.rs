//! A small Structured Field (RFC 9651) List parser, allocation-free and panic-free.

/// Strips optional whitespace (space, horizontal tab) from both ends.
pub(super) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

// A small Structured Field (RFC 9651) List parser, strict by default: enough for lists of items
// whose bare items are strings or tokens and whose parameters are integers, strings, tokens and
// byte sequences. Every other RFC 9651 type (decimals, booleans, dates, display strings, inner
// lists) is parsed too, so that a well-formed list is recognised as such, and then skipped.
//
// Why not the `sfv` crate (measured against sfv 0.14 with a counting allocator, issue #15.14):
// these fields are read on a client, from responses, never on a server's request path, at most
// once per failed attempt. Allocations per parse of `"burst";r=0;t=30, "daily";r=900;t=40000`:
// this parser 0, `sfv::Parser::parse::<List>` 11 (6 for one member), sfv's visitor API 0; with a
// `pk` parameter the visitor allocates 1 (it hands out decoded bytes), with an escaped name 2
// (an owned string). This parser allocates nothing in every case, because it borrows names and
// `pk` as written. Time per parse on the 2-core development machine: this parser about 0.5 µs
// for one member (it runs the list twice in strict mode: check, then iterate), sfv's visitor
// about 0.3 µs, `parse::<List>` about 0.9 µs; all negligible next to the response they read.
// Kept: it allocates nothing on any input, its lazy borrowed iterator API (`RateLimitItem<'a>`)
// would not survive sfv's push-style visitor without a buffer or an API change, and it saves
// the dependency (sfv brings base64 and ref-cast). Revisit if weir ever parses other
// Structured Fields.

/// How [`Members`] treats a malformed list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// RFC 9651: a malformed list is ignored whole.
    Strict,
    /// Skip a malformed member, resume after the next comma; whitespace before `;` allowed.
    Lenient,
}

/// A bare item, as far as these fields need one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bare<'a> {
    Integer(i64),
    String(&'a str),
    Token(&'a str),
    Bytes(&'a str),
    /// A decimal, boolean, date or display string: well-formed, but not used here.
    Other,
}

impl<'a> Bare<'a> {
    pub(super) fn non_negative(self) -> Option<u64> {
        match self {
            Self::Integer(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    pub(super) fn string(self) -> Option<&'a str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn bytes(self) -> Option<&'a str> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// A well-formed list member that is an item named by a string or token: its name and its
/// (already validated) parameters.
pub(super) struct Member<'a> {
    pub(super) name: &'a str,
    params: &'a [u8],
    mode: Mode,
}

impl<'a> Member<'a> {
    pub(super) fn params(&self) -> Params<'a> {
        Params {
            input: self.params,
            pos: 0,
            mode: self.mode,
        }
    }
}

/// The named items of a list: every member of a well-formed list in strict mode (none of a
/// malformed one), the well-formed members in lenient mode.
pub(super) struct Members<'a> {
    input: &'a [u8],
    pos: usize,
    mode: Mode,
}

impl<'a> Members<'a> {
    pub(super) fn new(input: &'a [u8], mode: Mode) -> Self {
        let input = trim_ows(input);
        let mut members = Self {
            input,
            pos: 0,
            mode,
        };
        // Strict: one pass to check the whole list first (no allocation), so that a syntax
        // error after the first members still hides them.
        if mode == Mode::Strict && !Self::well_formed(input) {
            members.pos = input.len();
        }
        members
    }

    /// RFC 9651 section 4.2.1, parsing a List: `member *( OWS "," OWS member )`, no trailing
    /// comma.
    pub(super) fn well_formed(input: &[u8]) -> bool {
        let mut pos = 0;
        while pos < input.len() {
            if parse_member(input, &mut pos, Mode::Strict).is_err() {
                return false;
            }
            skip_ows(input, &mut pos);
            match input.get(pos) {
                None => return true,
                Some(b',') => {
                    pos += 1;
                    skip_ows(input, &mut pos);
                    if pos >= input.len() {
                        return false; // a trailing comma
                    }
                }
                Some(_) => return false,
            }
        }
        true
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        loop {
            skip_ows(self.input, &mut self.pos);
            if self.input.get(self.pos) == Some(&b',') {
                self.pos += 1; // a separator (checked already, in strict mode)
                continue;
            }
            if self.pos >= self.input.len() {
                return None;
            }
            let start = self.pos;
            let parsed = parse_member(self.input, &mut self.pos, self.mode);
            skip_ows(self.input, &mut self.pos);
            let at_separator = matches!(self.input.get(self.pos), None | Some(b','));
            match parsed {
                Ok(member) if at_separator => {
                    if let Some(member) = member {
                        return Some(member);
                    }
                }
                _ if self.mode == Mode::Strict => {
                    // Unreachable after `well_formed`; stop rather than guess.
                    self.pos = self.input.len();
                    return None;
                }
                _ => self.pos = resync(self.input, start),
            }
        }
    }
}

/// Parses one list member: `bare-item parameters` or `inner-list parameters`. `Ok(None)` for a
/// well-formed member that is not an item named by a string or token.
pub(super) fn parse_member<'a>(
    input: &'a [u8],
    pos: &mut usize,
    mode: Mode,
) -> Result<Option<Member<'a>>, ()> {
    if input.get(*pos) == Some(&b'(') {
        parse_inner_list(input, pos, mode).ok_or(())?;
        return Ok(None);
    }
    let name = parse_bare(input, pos).ok_or(())?;
    let params_start = *pos;
    let mut params = Params {
        input,
        pos: *pos,
        mode,
    };
    while let Some(param) = params.parse_next() {
        param.ok_or(())?;
    }
    let params_bytes = input.get(params_start..params.pos).ok_or(())?;
    *pos = params.pos;
    Ok(match name {
        Bare::String(name) | Bare::Token(name) => Some(Member {
            name,
            params: params_bytes,
            mode,
        }),
        _ => None,
    })
}

/// `inner-list = "(" *SP [ sf-item *( 1*SP sf-item ) *SP ] ")" parameters`, skipped.
pub(super) fn parse_inner_list(input: &[u8], pos: &mut usize, mode: Mode) -> Option<()> {
    *pos += 1;
    loop {
        while input.get(*pos) == Some(&b' ') {
            *pos += 1;
        }
        if input.get(*pos)? == &b')' {
            *pos += 1;
            break;
        }
        parse_bare(input, pos)?;
        let mut params = Params {
            input,
            pos: *pos,
            mode,
        };
        while let Some(param) = params.parse_next() {
            param?;
        }
        *pos = params.pos;
        if !matches!(input.get(*pos)?, b' ' | b')') {
            return None;
        }
    }
    let mut params = Params {
        input,
        pos: *pos,
        mode,
    };
    while let Some(param) = params.parse_next() {
        param?;
    }
    *pos = params.pos;
    Some(())
}

/// The index just past the next comma that is not inside a string, from `start` (a member's
/// first byte); the end of the input if there is none.
pub(super) fn resync(input: &[u8], start: usize) -> usize {
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in input.iter().enumerate().skip(start) {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b',' {
            return i + 1;
        }
    }
    input.len()
}

/// The parameters of a member: `*( ";" *SP key [ "=" bare-item ] )`.
pub(super) struct Params<'a> {
    input: &'a [u8],
    pos: usize,
    mode: Mode,
}

impl<'a> Params<'a> {
    /// `None` when there is no further parameter; `Some(None)` for a malformed one.
    pub(super) fn parse_next(&mut self) -> Option<Option<(&'a [u8], Bare<'a>)>> {
        let mut pos = self.pos;
        if self.mode == Mode::Lenient {
            skip_ows(self.input, &mut pos); // RFC 9651 allows no space before ';'
        }
        if self.input.get(pos) != Some(&b';') {
            return None;
        }
        pos += 1;
        while self.input.get(pos) == Some(&b' ') {
            pos += 1;
        }
        let Some(key) = parse_key(self.input, &mut pos) else {
            return Some(None);
        };
        let value = if self.input.get(pos) == Some(&b'=') {
            pos += 1;
            match parse_bare(self.input, &mut pos) {
                Some(value) => value,
                None => return Some(None),
            }
        } else {
            Bare::Other // a bare key is the boolean true
        };
        self.pos = pos;
        Some(Some((key, value)))
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], Bare<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.parse_next().flatten()
    }
}

pub(super) fn skip_ows(input: &[u8], pos: &mut usize) {
    while matches!(input.get(*pos), Some(b' ' | b'\t')) {
        *pos += 1;
    }
}

/// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
pub(super) fn parse_key<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let start = *pos;
    if !matches!(input.get(start), Some(b'a'..=b'z' | b'*')) {
        return None;
    }
    let len = input
        .get(start..)?
        .iter()
        .take_while(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*'))
        .count();
    *pos = start + len;
    input.get(start..*pos)
}

pub(super) fn parse_bare<'a>(input: &'a [u8], pos: &mut usize) -> Option<Bare<'a>> {
    match *input.get(*pos)? {
        b'-' | b'0'..=b'9' => parse_number(input, pos),
        b'"' => parse_string(input, pos).map(Bare::String),
        b'a'..=b'z' | b'A'..=b'Z' | b'*' => parse_token(input, pos).map(Bare::Token),
        b':' => parse_byte_sequence(input, pos).map(Bare::Bytes),
        b'?' => match input.get(*pos + 1)? {
            b'0' | b'1' => {
                *pos += 2;
                Some(Bare::Other)
            }
            _ => None,
        },
        b'@' => {
            *pos += 1;
            match parse_number(input, pos)? {
                Bare::Integer(_) => Some(Bare::Other),
                _ => None,
            }
        }
        b'%' => parse_display_string(input, pos),
        _ => None,
    }
}

/// `sf-integer = ["-"] 1*15DIGIT`, `sf-decimal = ["-"] 1*12DIGIT "." 1*3DIGIT`
pub(super) fn parse_number<'a>(input: &'a [u8], pos: &mut usize) -> Option<Bare<'a>> {
    let mut i = *pos;
    let negative = input.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let int_digits = count_digits(input, i);
    if int_digits == 0 {
        return None;
    }
    let int_text = input.get(i..i + int_digits)?;
    i += int_digits;
    if input.get(i) == Some(&b'.') {
        let frac_digits = count_digits(input, i + 1);
        if int_digits > 12 || !(1..=3).contains(&frac_digits) {
            return None;
        }
        *pos = i + 1 + frac_digits;
        return Some(Bare::Other);
    }
    if int_digits > 15 {
        return None;
    }
    // At most 15 digits: fits an i64 with room to spare.
    let magnitude = int_text
        .iter()
        .fold(0_i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    *pos = i;
    Some(Bare::Integer(if negative { -magnitude } else { magnitude }))
}

pub(super) fn count_digits(input: &[u8], from: usize) -> usize {
    input.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}

/// `sf-string = DQUOTE *( unescaped / "%" / "\" ( DQUOTE / "\" ) ) DQUOTE`, printable ASCII only;
/// returns the text between the quotes, escapes as written.
pub(super) fn parse_string<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let start = *pos + 1;
    let mut i = start;
    loop {
        match *input.get(i)? {
            b'"' => break,
            b'\\' => match input.get(i + 1)? {
                b'"' | b'\\' => i += 2,
                _ => return None,
            },
            0x20..=0x7e => i += 1,
            _ => return None,
        }
    }
    *pos = i + 1;
    std::str::from_utf8(input.get(start..i)?).ok()
}

/// `sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )`
pub(super) fn parse_token<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let start = *pos;
    let len = input
        .get(start..)?
        .iter()
        .take_while(|&&b| is_tchar(b) || b == b':' || b == b'/')
        .count();
    *pos = start + len;
    std::str::from_utf8(input.get(start..*pos)?).ok()
}

pub(super) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// `sf-binary = ":" base64 ":"`; returns the base64 text.
pub(super) fn parse_byte_sequence<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let start = *pos + 1;
    let len = input
        .get(start..)?
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .count();
    if input.get(start + len) != Some(&b':') {
        return None;
    }
    *pos = start + len + 1;
    std::str::from_utf8(input.get(start..start + len)?).ok()
}

/// `sf-displaystring = "%" DQUOTE *( unescaped / "\" / pct-encoded ) DQUOTE` (RFC 9651), skipped.
pub(super) fn parse_display_string<'a>(input: &'a [u8], pos: &mut usize) -> Option<Bare<'a>> {
    if input.get(*pos + 1) != Some(&b'"') {
        return None;
    }
    let mut i = *pos + 2;
    loop {
        match *input.get(i)? {
            b'"' => break,
            b'%' => {
                let hex = input.get(i + 1..i + 3)?;
                if !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return None;
                }
                i += 3;
            }
            0x20..=0x7e => i += 1,
            _ => return None,
        }
    }
    *pos = i + 1;
    Some(Bare::Other)
}
