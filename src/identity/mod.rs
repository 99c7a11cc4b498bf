//! Who someone is, proven: two-factor codes (`totp`) and single sign-on with an OpenID Connect
//! provider (`oidc`: discovery, the authorization-code exchange and the ID token's checks).
//! What a proven person may then do is decided by the management layer; the web UI drives
//! these checks.

pub mod oidc;
pub mod totp;
