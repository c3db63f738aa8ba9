//! The MIME structure content checks need (Postfix's mime_state, much reduced): which line
//! of a message is a primary header, a MIME header, a header of an attached message, or a
//! body line. Only `Content-Type` is read (its `multipart/*` boundary and `message/rfc822`);
//! nothing is decoded. Nesting is capped at [`MAX_DEPTH`] boundaries; deeper ones are body.

/// What a logical line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A primary header that is not a MIME header.
    Header,
    /// `Content-*` or `MIME-Version` anywhere, or any header of a body part.
    Mime,
    /// A non-MIME header of an attached `message/rfc822`.
    Nested,
    /// A body line (boundary lines included).
    Body,
    /// The empty line that ends a header block.
    Separator,
}

const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Primary,
    BodyPart,
    Attached,
}

/// Splits `message` (LF line ends) into logical lines, each with its part. A header keeps
/// its continuation lines; every slice keeps its line ends, so the slices concatenated are
/// the message.
pub fn logical_lines(message: &[u8]) -> Vec<(Part, &[u8])> {
    let lines: Vec<&[u8]> = message.split_inclusive(|&b| b == b'\n').collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut boundaries: Vec<Vec<u8>> = Vec::new();
    let mut block = Some(Block::Primary);
    let mut attached_next = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some(kind) = block else {
            out.push((Part::Body, line));
            if let Some(closing) = boundary(line, &boundaries) {
                match closing {
                    Some(level) => boundaries.truncate(level),
                    None => (block, attached_next) = (Some(Block::BodyPart), false),
                }
            }
            i += 1;
            continue;
        };
        if trim_end(line).is_empty() {
            out.push((Part::Separator, line));
            block = attached_next.then_some(Block::Attached);
            attached_next = false;
            i += 1;
            continue;
        }
        let Some(name) = header_name(line) else {
            block = None; // not a header: the body starts here
            continue;
        };
        let mut end = i + 1;
        while end < lines.len() && matches!(lines[end].first(), Some(b' ' | b'\t')) {
            end += 1;
        }
        let start = offset(message, lines[i]);
        let stop = offset(message, lines[end - 1]) + lines[end - 1].len();
        let raw = &message[start..stop];
        let mime = name.starts_with("content-") || name == "mime-version";
        let part = match (kind, mime) {
            (Block::BodyPart, _) | (_, true) => Part::Mime,
            (Block::Primary, false) => Part::Header,
            (Block::Attached, false) => Part::Nested,
        };
        if name == "content-type" {
            let value = String::from_utf8_lossy(raw).to_ascii_lowercase();
            attached_next = value.contains("message/rfc822");
            if let Some(b) = boundary_parameter(raw).filter(|_| boundaries.len() < MAX_DEPTH) {
                boundaries.push(b);
            }
        }
        out.push((part, raw));
        i = end;
    }
    out
}

/// `Some(None)`: an opening boundary; `Some(Some(level))`: a closing one (`--b--`), whose
/// level and deeper ones end.
fn boundary(line: &[u8], boundaries: &[Vec<u8>]) -> Option<Option<usize>> {
    let rest = trim_end(line).strip_prefix(b"--")?;
    for (level, b) in boundaries.iter().enumerate().rev() {
        if let Some(tail) = rest.strip_prefix(b.as_slice()) {
            match tail {
                b"" => return Some(None),
                b"--" => return Some(Some(level)),
                _ => {}
            }
        }
    }
    None
}

/// The `boundary=` parameter of a Content-Type header, quoted or not.
fn boundary_parameter(raw: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(raw);
    let at = text.to_ascii_lowercase().find("boundary=")?;
    let value = &text[at + "boundary=".len()..];
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => value.split([';', ' ', '\t', '\r', '\n']).next()?,
    };
    (!value.is_empty()).then(|| value.as_bytes().to_vec())
}

/// The lower-case name of a header line, or `None` when the line is not a header.
fn header_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let printable = |b: &u8| b.is_ascii_graphic() && *b != b':';
    (!name.is_empty() && name.iter().all(printable))
        .then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

fn trim_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// Where `part` (a sub-slice of `whole`) starts.
fn offset(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}
