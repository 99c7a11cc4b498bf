//! A browser without JavaScript, for the web UI's guards a real browser never shows: it keeps
//! cookies, sends the headers it is given (a proxy's), follows no redirects, and fills forms
//! with the CSRF token of the page they are on.

use std::collections::BTreeMap;

use super::Server;

pub struct Browser {
    base: String,
    agent: ureq::Agent,
    pub cookies: BTreeMap<String, String>,
    /// Headers sent with every request.
    headers: Vec<(String, String)>,
}

/// What came back: the status, where it points, the body.
pub struct Answer {
    pub status: u16,
    pub location: String,
    pub body: String,
}

/// The value of the first hidden `csrf` field on a page.
pub fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token in {page}"))
        + 19;
    page[at..].split('"').next().unwrap().to_string()
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        Browser {
            base: server.url.clone(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .new_agent(),
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// Sends `name: value` with every request from now on (replacing an earlier value).
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn answer(&mut self, mut resp: ureq::http::Response<ureq::Body>) -> Answer {
        for value in resp.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Answer {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, path: &str) -> Answer {
        let mut req = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("cookie", &self.cookie_header());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.call().unwrap();
        self.answer(resp)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("cookie", &self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send(body.as_bytes()).unwrap();
        self.answer(resp)
    }

    /// Posts to `action` the form of the page at `page`, with that page's CSRF token.
    pub fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Answer {
        let form = self.get(page);
        assert_eq!(form.status, 200, "{page}: {}", form.body);
        let token = csrf(&form.body);
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all)
    }

    /// Signs in with a password through the sign-in form.
    pub fn sign_in(&mut self, email: &str, password: &str) -> Answer {
        self.submit(
            "/login",
            "/login",
            &[("next", "/"), ("email", email), ("password", password)],
        )
    }

    pub fn sign_out(&mut self) {
        let out = self.submit("/account", "/logout", &[]);
        assert_eq!(out.status, 303, "{}", out.body);
    }
}
