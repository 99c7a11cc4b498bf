//! Two-factor codes (TOTP, RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, one step of clock
//! drift either way) with totp-rs, the enrollment QR code drawn on the server as SVG with
//! qrcode, and one-time recovery codes kept as SHA-256 hashes.

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Builder, Secret, Totp};

/// Recovery codes made at enrollment.
pub const RECOVERY_CODES: usize = 10;

/// A new random 160-bit secret, in base32 (what authenticator apps take by hand).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    crate::ids::fill_random(&mut bytes);
    Secret::from(bytes.to_vec()).to_base32()
}

fn totp(secret: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret).ok()?;
    Builder::new().with_secret(secret).build().ok()
}

/// The time step a code matches at `now` (unix seconds), one step of drift allowed either
/// way; `None` for a wrong code or a malformed secret. A step at or before `used` (the last
/// step that signed someone in) is refused: a code works once.
pub fn check(secret: &str, code: &str, now: u64, used: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret)?.check(&code, now).filter(|step| *step > used)
}

/// The code for `now` (tests and the enrollment check use it).
pub fn code_at(secret: &str, now: u64) -> Option<String> {
    Some(totp(secret)?.generate(now).to_string())
}

/// The `otpauth://` URI an authenticator app reads from the QR code.
pub fn uri(secret: &str, account: &str, issuer: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// The QR code of `uri` as an SVG element, drawn here (nothing is fetched from elsewhere).
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = QrCode::new(uri.as_bytes()).ok()?;
    let drawn = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // An element to put in a page, without the XML declaration of a file.
    let start = drawn.find("<svg")?;
    Some(drawn[start..].to_string())
}

/// New recovery codes (`xxxxx-xxxxx`, 50 random bits each) and the hashes to keep.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            crate::ids::fill_random(&mut bytes);
            let chars: String = bytes
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect();
            let code = format!("{}-{}", &chars[..5], &chars[5..]);
            let hash = recovery_hash(&code);
            (code, hash)
        })
        .unzip()
}

/// What is kept of a recovery code (case, spaces and dashes do not matter when typed).
pub fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    crate::ids::hex(ring::digest::digest(&ring::digest::SHA256, normal.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc_6238_and_work_once() {
        // RFC 6238's SHA-1 test secret ("12345678901234567890"), at 59 s: 94287082, whose
        // last six digits are the 6-digit code.
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        assert_eq!(code_at(&secret, 59).unwrap(), "287082");
        let step = check(&secret, "287 082", 59, 0).unwrap();
        assert_eq!(step, 1);
        assert_eq!(check(&secret, "287082", 59, step), None, "replayed");
        assert_eq!(check(&secret, "287083", 59, 0), None);
        assert_eq!(check(&secret, "28708", 59, 0), None);
        assert_eq!(check("not base32!", "287082", 59, 0), None);
        // A code of the previous step still works (clock drift); two steps back does not.
        assert!(check(&secret, "287082", 59 + 30, 0).is_some());
        assert!(check(&secret, "287082", 59 + 60, 0).is_none());
    }

    #[test]
    fn enrollment_material_is_well_formed() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        let uri = uri(&secret, "ann@example.com", "picket");
        assert!(uri.starts_with("otpauth://totp/picket:ann%40example%2Ecom?secret="));
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(
            recovery_hash(&codes[0].to_uppercase().replace('-', " ")),
            hashes[0]
        );
    }
}
