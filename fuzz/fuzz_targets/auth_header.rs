//! Credential parsing (`X-Sentry-Auth`, query strings, Basic, DSNs) on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::ids::Dsn;
use picket::intake::auth::{self, Sources};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(creds) = auth::parse_header(text) {
        assert!(!creds.public_key.is_empty());
    }
    let _ = auth::parse_datagram_header(text);
    let _ = auth::parse_basic(text);
    let _ = auth::parse_query(text);
    let _ = auth::from_sources(Sources {
        x_sentry_auth: Some(text),
        authorization: Some(text),
        query: Some(text),
    });
    if let Ok(dsn) = Dsn::parse(text) {
        assert!(!dsn.public_key.is_empty() && !dsn.project_id.is_empty());
        let _ = dsn.public();
        let _ = dsn.envelope_url();
        let _ = dsn.auth_header("picket/fuzz");
    }
});
