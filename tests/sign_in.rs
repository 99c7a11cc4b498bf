//! Signing in the ways teams do: single sign-on through a real OpenID Connect provider
//! (oidc-provider from npm) in Debian's chromium, two-factor codes computed here from the
//! secret the setup page shows, password resets mailed through a real SMTP server (aiosmtpd),
//! a reverse proxy's trusted header, and the audit log that records all of it.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::browser::{Browser, csrf};
use common::smtp::Smtp;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

/// The text of the element with this id.
fn element(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {page}"));
    let start = at + page[at..].find('>').unwrap() + 1;
    let end = start + page[start..].find("</").unwrap();
    page[start..end].trim().to_string()
}

/// RFC 6238 with HMAC-SHA1, 6 digits, 30-second steps: what an authenticator app shows for a
/// base32 secret at `time`, computed here from the RFC, not with picket's code.
fn totp(secret: &str, time: u64) -> String {
    let mut bits = 0u64;
    let mut count = 0;
    let mut key = Vec::new();
    for c in secret.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {secret}"),
        };
        bits = (bits << 5) | u64::from(v);
        count += 5;
        if count >= 8 {
            count -= 8;
            key.push((bits >> count) as u8);
        }
    }
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key);
    let mac = ring::hmac::sign(&k, &(time / 30).to_be_bytes());
    let h = mac.as_ref();
    let offset = usize::from(h[19] & 0xf);
    let n = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    format!("{:06}", n % 1_000_000)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn audit(server: &Server) -> Vec<Value> {
    server.json(&["audit"]).as_array().unwrap().clone()
}

fn has_entry(entries: &[Value], action: &str, subject: &str, detail: &str) -> bool {
    entries.iter().any(|e| {
        e["action"] == action
            && e["subject"] == subject
            && e["detail"].as_str().unwrap_or("").contains(detail)
    })
}

#[test]
fn two_factor_codes_are_set_up_with_a_qr_code_and_asked_for_after_the_password() {
    let server = Server::start();
    common::create_admin(&server.data_dir, "ann@example.com", PASSWORD);
    let mut ann = Browser::new(&server);
    assert_eq!(ann.sign_in("ann@example.com", PASSWORD).location, "/");

    // Setup: a QR code drawn on the server, the key to type in, a code confirms it.
    let start = ann.submit("/account/two-factor", "/account/two-factor/start", &[]);
    assert_eq!(start.status, 200);
    assert!(start.body.contains("<svg"), "a QR code: {}", start.body);
    let secret = element(&start.body, "totp-secret");
    assert_eq!(secret.len(), 32);
    let wrong = ann.post(
        "/account/two-factor/confirm",
        &[("csrf", &csrf(&start.body)), ("code", "000000")],
    );
    assert!(
        wrong.body.contains("That code is not right"),
        "{}",
        wrong.body
    );
    assert_eq!(
        element(&wrong.body, "totp-secret"),
        secret,
        "the same key again"
    );
    let on = ann.post(
        "/account/two-factor/confirm",
        &[
            ("csrf", &csrf(&start.body)),
            ("code", &totp(&secret, now())),
        ],
    );
    let list_at = on
        .body
        .find("id=\"recovery-codes\"")
        .expect("recovery codes");
    let list = &on.body[list_at..list_at + on.body[list_at..].find("</ol>").unwrap()];
    let codes: Vec<String> = list
        .split("<li>")
        .skip(1)
        .filter_map(|c| c.split("</li>").next())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(codes.len(), 10, "{}", on.body);
    ann.sign_out();

    // The password alone opens nothing: the session waits for a code.
    let pw = ann.sign_in("ann@example.com", PASSWORD);
    assert_eq!(pw.location, "/login/code?next=%2F");
    assert!(ann.get("/").location.starts_with("/login?next="));
    let form = ann.get("/login/code");
    assert!(form.body.contains("Two-factor code"));
    let token = csrf(&form.body);
    let refused = ann.post("/login/code", &[("csrf", &token), ("code", "123456")]);
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("That code is not right"));
    // The code of the next step (the current one signed the setup, and a code works once).
    let code = totp(&secret, now() + 30);
    let done = ann.post(
        "/login/code",
        &[("csrf", &token), ("code", &code), ("next", "/")],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(ann.get("/").status, 200, "signed in");
    ann.sign_out();

    // The same code again is refused; a recovery code works once.
    ann.sign_in("ann@example.com", PASSWORD);
    let token = csrf(&ann.get("/login/code").body);
    let again = ann.post("/login/code", &[("csrf", &token), ("code", &code)]);
    assert_eq!(again.status, 401, "a code works once");
    let recovery = codes[0].to_uppercase();
    let rescued = ann.post("/login/code", &[("csrf", &token), ("code", &recovery)]);
    assert_eq!(rescued.status, 303, "{}", rescued.body);
    ann.sign_out();
    ann.sign_in("ann@example.com", PASSWORD);
    let token = csrf(&ann.get("/login/code").body);
    let used = ann.post("/login/code", &[("csrf", &token), ("code", &codes[0])]);
    assert_eq!(used.status, 401, "a recovery code works once");

    // Wrong codes are throttled: after a few, the form says to wait.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            ann.post("/login/code", &[("csrf", &token), ("code", "999999")])
                .status,
        );
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    let entries = audit(&server);
    assert!(has_entry(
        &entries,
        "two_factor_enabled",
        "ann@example.com",
        ""
    ));
    assert!(has_entry(
        &entries,
        "sign_in",
        "ann@example.com",
        "two-factor code"
    ));
    assert!(has_entry(
        &entries,
        "recovery_code_used",
        "ann@example.com",
        "recovery code"
    ));
    assert!(has_entry(
        &entries,
        "sign_in_failed",
        "ann@example.com",
        "wrong two-factor code"
    ));
    let failed = &entries
        .iter()
        .find(|e| e["action"] == "sign_in_failed")
        .unwrap();
    assert_eq!(failed["address"], "127.0.0.1");

    // An admin turns off the codes of someone who lost their phone: the password is enough
    // again.
    let user = server.json(&["user", "reset-two-factor", "ann@example.com"]);
    assert_eq!(user["two_factor"], false);
    let mut again = Browser::new(&server);
    assert_eq!(again.sign_in("ann@example.com", PASSWORD).location, "/");
    // Role changes are recorded with who made them.
    server.cli(&["user", "create", "dora@example.com"]);
    assert_eq!(
        server.json(&["user", "role", "dora@example.com", "admin"])["is_admin"],
        true
    );
    let entries = audit(&server);
    let granted = entries
        .iter()
        .find(|e| e["action"] == "admin_granted" && e["subject"] == "dora@example.com")
        .expect("the role change is in the audit log");
    assert_eq!(granted["actor"], "the command line");
    assert!(has_entry(
        &entries,
        "two_factor_disabled",
        "ann@example.com",
        ""
    ));
    assert!(has_entry(
        &entries,
        "user_created",
        "dora@example.com",
        "member"
    ));
}

#[test]
fn admins_can_require_two_factor_codes_for_password_accounts() {
    let server = Server::start_with_config("[auth]\nrequire_two_factor = true\n", &[]);
    common::create_admin(&server.data_dir, "ann@example.com", PASSWORD);
    let mut ann = Browser::new(&server);
    ann.sign_in("ann@example.com", PASSWORD);
    assert_eq!(ann.get("/").location, "/account/two-factor");
    assert_eq!(ann.get("/projects/default").location, "/account/two-factor");
    let page = ann.get("/account/two-factor");
    assert!(page.body.contains("Your admins require two-factor codes"));
}

#[test]
fn a_forgotten_password_is_reset_with_a_mailed_link_that_works_once() {
    let smtp_port = common::free_port();
    let smtp = Smtp::start(smtp_port);
    let server = Server::start_with_config(
        &format!(
            "smtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nmail_from = \"picket@example.com\"\n\
             [auth]\nreset_link_lifetime = \"4s\"\n"
        ),
        &[],
    );
    common::create_admin(&server.data_dir, "bob@example.com", PASSWORD);
    let mut visitor = Browser::new(&server);
    assert!(visitor.get("/login").body.contains("Forgot password?"));

    // The same answer whether or not the address has an account.
    let asked = visitor.submit(
        "/login/forgot",
        "/login/forgot",
        &[("email", "Bob@Example.com")],
    );
    let unknown = visitor.submit(
        "/login/forgot",
        "/login/forgot",
        &[("email", "nobody@example.com")],
    );
    assert_eq!(asked.status, 200);
    assert_eq!((asked.status, &asked.body), (unknown.status, &unknown.body));

    let deadline = Instant::now() + Duration::from_secs(20);
    while smtp.mails().is_empty() {
        assert!(Instant::now() < deadline, "no reset mail arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mails = smtp.mails();
    assert_eq!(
        mails.len(),
        1,
        "one mail, to the account that exists: {mails:?}"
    );
    assert!(mails[0].contains("To: <bob@example.com>") || mails[0].contains("To: bob@example.com"));
    // The body is quoted-printable: long lines end in a soft break ("=" and a newline).
    let link = |mail: &str| {
        let mail = mail.replace("=\r\n", "").replace("=\n", "");
        let at = mail.find("/set-password/").expect("a link in the mail");
        mail[at..].split_whitespace().next().unwrap().to_string()
    };
    let path = link(&mails[0]);
    assert!(visitor.get(&path).body.contains("Set your password"));
    let set = visitor.post(&path, &[("password", "a brand new secret")]);
    assert_eq!(set.location, "/login?flash=password-set");
    assert_eq!(
        visitor
            .sign_in("bob@example.com", "a brand new secret")
            .location,
        "/"
    );
    // The old one is gone; the link is used up.
    let mut other = Browser::new(&server);
    assert_eq!(other.sign_in("bob@example.com", PASSWORD).status, 401);
    assert_eq!(other.get(&path).status, 404);
    assert_eq!(
        other.post(&path, &[("password", "yet another one")]).status,
        404
    );

    // A link expires.
    other.submit(
        "/login/forgot",
        "/login/forgot",
        &[("email", "bob@example.com")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while smtp.mails().len() < 2 {
        assert!(Instant::now() < deadline, "no second reset mail arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = smtp
        .mails()
        .into_iter()
        .map(|m| link(&m))
        .find(|p| *p != path)
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let expired = other.get(&second);
    assert_eq!(expired.status, 404);
    assert!(expired.body.contains("invalid, used or expired"));

    // Requests are throttled.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            other
                .submit(
                    "/login/forgot",
                    "/login/forgot",
                    &[("email", "bob@example.com")],
                )
                .status,
        );
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(has_entry(
        &audit(&server),
        "password_reset_requested",
        "bob@example.com",
        "mailed"
    ));
}

#[test]
fn a_trusted_proxys_header_signs_people_in_only_from_that_proxy() {
    let trusted = Server::start_with_config(
        "[auth]\ntrusted_header = \"X-Forwarded-Email\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        &[],
    );
    trusted.cli(&["user", "create", "carol@example.com"]);
    let mut carol = Browser::new(&trusted);
    carol.set_header("X-Forwarded-Email", "Carol@Example.com");
    let first = carol.get("/account");
    assert_eq!(first.status, 303);
    assert_eq!(first.location, "/account");
    let page = carol.get("/account");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("carol@example.com"),
        "signed in as carol"
    );
    // Someone the proxy names without an account is refused, saying why.
    let mut stranger = Browser::new(&trusted);
    stranger.set_header("X-Forwarded-Email", "dave@example.com");
    let refused = stranger.get("/");
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("no account for dave@example.com"));
    assert!(has_entry(
        &audit(&trusted),
        "sign_in",
        "carol@example.com",
        "trusted proxy"
    ));

    // From an address that is not the proxy, the header means nothing.
    let elsewhere = Server::start_with_config(
        "[auth]\ntrusted_header = \"X-Forwarded-Email\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        &[],
    );
    elsewhere.cli(&["user", "create", "carol@example.com"]);
    let mut forger = Browser::new(&elsewhere);
    forger.set_header("X-Forwarded-Email", "carol@example.com");
    let ignored = forger.get("/account");
    assert!(
        ignored.location.starts_with("/login?next="),
        "{}",
        ignored.location
    );
}

#[test]
fn single_sign_on_through_a_real_openid_provider() {
    let provider_port = common::free_port();
    let secret_dir = tempfile::tempdir().unwrap();
    let secret_file = secret_dir.path().join("client-secret");
    std::fs::write(&secret_file, "a-long-client-secret-for-picket\n").unwrap();
    let server = Server::start_with_config(
        &format!(
            "[oidc]\nissuer = \"http://127.0.0.1:{provider_port}\"\nclient_id = \"picket\"\n\
             client_secret_file = \"{}\"\nbutton_label = \"Example ID\"\n\
             allowed_domains = [\"example.com\"]\nauto_create = true\n\
             default_projects = [\"default\"]\nadmin_group = \"picket-admins\"\n\
             scopes = [\"email\", \"groups\"]\n",
            secret_file.display()
        ),
        &[],
    );
    let seen = common::run_node(
        "oidc_flow.mjs",
        &[],
        &[
            ("PICKET_URL", server.url.as_str()),
            ("PROVIDER_PORT", &provider_port.to_string()),
            ("CLIENT_SECRET", "a-long-client-secret-for-picket"),
        ],
    );
    let ann = &seen["ann"];
    assert_eq!(ann["label"], "Sign in with Example ID");
    assert_eq!(ann["path"], "/", "{ann}");
    assert!(
        ann["nav"].as_str().unwrap().contains("ann@example.com"),
        "{ann}"
    );
    assert!(
        ann["replayed"]
            .as_str()
            .unwrap()
            .contains("Sign-in refused"),
        "{ann}"
    );
    assert_eq!(ann["after_replay"], "/");
    let bob = &seen["bob"];
    assert_eq!(bob["path"], "/", "{bob}");
    let eve = &seen["eve"];
    assert_eq!(eve["heading"], "Sign-in refused", "{eve}");
    assert!(
        eve["text"]
            .as_str()
            .unwrap()
            .contains("not in an allowed domain"),
        "{eve}"
    );
    let una = &seen["una"];
    assert!(
        una["text"].as_str().unwrap().contains("has not verified"),
        "{una}"
    );

    // Accounts were made on first sign-in; the admin group made ann an admin, not bob; both
    // joined the default project.
    let users = server.json(&["user", "list"]);
    let role = |email: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .map(|u| u["is_admin"].as_bool().unwrap())
    };
    assert_eq!(role("ann@example.com"), Some(true));
    assert_eq!(role("bob@example.com"), Some(false));
    assert_eq!(role("eve@elsewhere.org"), None);
    assert_eq!(
        bob["default_project"], 200,
        "bob is a member of the default project"
    );
    let entries = audit(&server);
    assert!(has_entry(
        &entries,
        "user_created",
        "ann@example.com",
        "single sign-on"
    ));
    assert!(has_entry(
        &entries,
        "sign_in",
        "bob@example.com",
        "single sign-on"
    ));
    assert!(has_entry(
        &entries,
        "sign_in_failed",
        "eve@elsewhere.org",
        "allowed domain"
    ));
}
