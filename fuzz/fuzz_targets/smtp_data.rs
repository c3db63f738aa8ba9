//! Message data through the DATA/BDAT decoder of `proto` in every mode and bare-newline
//! policy: the outcome does not depend on how the bytes were split across reads; in smtpd's
//! policies only <CRLF>.<CRLF> ends DATA and nothing stored holds a CR or NUL; `sendmail
//! -bs`'s stores the text read the Unix way (see `proto::fuzzing::check_data`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(knobs & 0x0f) + 1;
    let limit = if knobs & 0x10 != 0 {
        u64::from(knobs) * 4
    } else {
        0
    };
    let input = if knobs & 0x20 != 0 {
        proto::fuzzing::smtp_alphabet(rest)
    } else {
        rest.to_vec()
    };
    proto::fuzzing::check_data(&input, step, limit);
});
