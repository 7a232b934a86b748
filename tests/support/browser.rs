//! A real browser for the dashboard tests: Debian's headless Chromium,
//! driven through `chromedriver` over WebDriver (JSON over HTTP, with the
//! crate's own `ureq`). [`ChromeDriver`] runs the driver on a free port
//! and kills it on drop; [`Browser`] is one session in it (its own
//! profile directory), closed on drop. Waits poll a condition in the page
//! with a deadline; nothing sleeps and hopes.
//!
//! Needs `chromium` and `chromium-driver` (`scripts/test.sh` installs
//! them); runs as root with `--headless --no-sandbox`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

/// The W3C name of an element reference in WebDriver replies.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium binary: the real one behind Debian's launcher script.
fn chromium_binary() -> &'static str {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed (apt-get install chromium chromium-driver)")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A `chromedriver` process on a free port, killed on drop.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl ChromeDriver {
    /// Starts chromedriver and waits (20 s at most) until it is ready.
    pub fn start() -> ChromeDriver {
        let dir = TempDir::new("chromedriver");
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("driver log");
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn chromedriver (apt-get install chromium-driver)");
        let driver = ChromeDriver {
            child,
            port,
            _dir: dir,
        };
        let agent = agent();
        wait_until(Duration::from_secs(20), "chromedriver is ready", || {
            agent
                .get(format!("http://127.0.0.1:{port}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true))
        });
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium session.
pub struct Browser {
    session: String,
    agent: ureq::Agent,
    // Dropped after the session is closed (fields drop in order).
    driver: ChromeDriver,
    profile: TempDir,
}

impl Browser {
    /// A new session in a fresh profile, window `width` × `height`, with
    /// the browser's console log kept for [`Browser::console_errors`].
    pub fn start(width: u32, height: u32) -> Browser {
        let driver = ChromeDriver::start();
        let profile = TempDir::new("chromium-profile");
        let agent = agent();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-extensions", "--disable-background-networking",
                    "--force-device-scale-factor=1", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let reply: Value = agent
            .post(format!("http://127.0.0.1:{}/session", driver.port))
            .send_json(&caps)
            .expect("POST /session")
            .body_mut()
            .read_json()
            .expect("session reply");
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_string();
        Browser {
            session,
            agent,
            driver,
            profile,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.driver.port, self.session
        )
    }

    /// One WebDriver command; panics with the driver's message on error.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = self.url(path);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self.agent.post(&url).send_json(body.unwrap_or(json!({}))),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let value: Value = response
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("{method} {path}: reply is not JSON: {e}"));
        if status != 200 {
            panic!("{method} {path} -> {status}: {}", value["value"]);
        }
        value["value"].clone()
    }

    /// Opens `url` and waits for the document to load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the
    /// page and returns what it returns.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs an asynchronous `script`: it gets a callback as its last
    /// argument and the result is what it passes to it.
    pub fn js_async(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Polls `script` every 50 ms until it returns something other than
    /// `null`, `false`, `0` or `""`, and returns that; panics with `what`
    /// (and the page's text) at the deadline.
    pub fn wait_js(&self, timeout: Duration, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script, args.clone());
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() >= deadline {
                let text = self.js("return document.body.innerText", json!([]));
                panic!(
                    "timed out after {timeout:?} waiting until {what}; the page says:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until an element matches `css` and returns its reference.
    pub fn wait_element(&self, timeout: Duration, css: &str) -> String {
        self.wait_js(
            timeout,
            &format!("an element matches {css}"),
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        );
        self.element(css)
            .unwrap_or_else(|| panic!("{css} went away"))
    }

    /// The first element matching `css`, if any.
    pub fn element(&self, css: &str) -> Option<String> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT].as_str())
            .map(String::from)
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        self.js(
            "return document.querySelectorAll(arguments[0]).length",
            json!([css]),
        )
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Clicks the element matching `css` (waiting up to 10 s for it), as a
    /// user would (WebDriver element click: scrolled into view, real
    /// events).
    pub fn click(&self, css: &str) {
        let id = self.wait_element(Duration::from_secs(10), css);
        self.cmd("POST", &format!("/element/{id}/click"), None);
    }

    /// Types `text` into the element matching `css` (after clearing it).
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.wait_element(Duration::from_secs(10), css);
        self.cmd("POST", &format!("/element/{id}/clear"), None);
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The text of the first element matching `css` ("" if none).
    pub fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Resizes the window.
    pub fn set_window(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// The visible page as PNG bytes.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", None);
        base64_decode(v.as_str().expect("screenshot is base64"))
    }

    /// The console entries logged since the last call, as `LEVEL message`.
    pub fn console(&self) -> Vec<String> {
        let v = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})));
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or("?"),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The console errors (level `SEVERE`: uncaught exceptions,
    /// `console.error`, failed loads, CSP violations) since the last call.
    pub fn console_errors(&self) -> Vec<String> {
        self.console()
            .into_iter()
            .filter(|l| l.starts_with("SEVERE") || l.starts_with("ERROR"))
            .collect()
    }

    /// The profile directory (kept when a test fails).
    pub fn profile(&self) -> &std::path::Path {
        self.profile.path()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session ends Chromium; the driver is killed after.
        let _ = self.agent.delete(self.url("")).call();
    }
}

/// Standard base64 (with or without padding) to bytes.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
