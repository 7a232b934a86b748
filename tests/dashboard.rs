//! The dashboard in a real browser: headless Chromium (Debian's package)
//! driven over WebDriver against a real `distsched node --http` process
//! and a private Redis. Each test signs in through the page's own form,
//! reads pages as a user would, and checks the browser's console for
//! errors on every page it visits. Browser tests run one at a time (the
//! machine has two cores); every wait is a condition with a deadline.
//!
//! `DISTSCHED_SCREENSHOTS=DIR cargo test --test dashboard` also writes the
//! README's screenshots (overview and task detail, light and dark) to DIR.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Browser, NodeProc, RedisServer, free_port, unique_ns, wait_for, wait_until};

const FULL: &str = "full-token-for-the-dashboard";
const READ: &str = "read-token-for-the-dashboard";
const WAIT: Duration = Duration::from_secs(20);

/// One browser at a time.
static BROWSERS: Mutex<()> = Mutex::new(());

/// A node with the HTTP server, both tokens and ad hoc shell tasks.
struct Dash {
    _redis: RedisServer,
    node: NodeProc,
    port: u16,
    agent: ureq::Agent,
}

impl Dash {
    fn start(id: &str, extra: &[&str]) -> Dash {
        let redis = RedisServer::start();
        let port = free_port();
        let port_text = port.to_string();
        let mut args = vec![
            "--http",
            port_text.as_str(),
            "--http-token",
            FULL,
            "--http-read-token",
            READ,
            "--allow-adhoc-shell",
            "--capacity",
            "4",
        ];
        args.extend(extra);
        let node = NodeProc::start(&redis.url(), &unique_ns(id), id, &args);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        let dash = Dash {
            _redis: redis,
            node,
            port,
            agent,
        };
        wait_until(WAIT, "the node has a leader and a worker", || {
            dash.get("/stats").1["workers_online"] == json!(1) && dash.get("/leader").0 == 200
        });
        dash
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let auth = format!("Bearer {token}");
        let result = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            "DELETE" => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            _ => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body.unwrap_or(json!({}))),
        };
        // Status 0: no connection (the server is not up yet).
        let Ok(mut r) = result else {
            return (0, Value::Null);
        };
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, FULL, None)
    }

    fn submit(&self, task: Value) -> String {
        let (status, v) = self.call("POST", "/tasks", FULL, Some(task));
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    fn wait_status(&self, id: &str, want: &str) -> Value {
        wait_for(WAIT, &format!("task {id} is {want}"), || {
            let (_, t) = self.get(&format!("/tasks/{id}"));
            (t["status"] == json!(want)).then_some(t)
        })
    }
}

/// Signs in through the page's form with `token` and waits for the
/// overview.
fn sign_in(browser: &Browser, dash: &Dash, token: &str) {
    browser.goto(&dash.base());
    browser.wait_js(
        WAIT,
        "the page asks for a token",
        "return !document.getElementById('login').hidden",
        json!([]),
    );
    browser.type_into("#token", token);
    browser.click("#sign-in");
    wait_page(browser, "overview");
}

/// Waits until page `name` has loaded its data.
fn wait_page(browser: &Browser, name: &str) {
    browser.wait_js(
        WAIT,
        &format!("the {name} page is ready"),
        "const p = document.getElementById('page'); \
         return p && p.dataset.page === arguments[0] && p.dataset.ready === '1'",
        json!([name]),
    );
}

/// Opens `#hash` (a page of the dashboard) and waits for it.
fn open(browser: &Browser, dash: &Dash, hash: &str, name: &str) {
    browser.goto(&format!("{}#{hash}", dash.base()));
    wait_page(browser, name);
}

/// Fails with the console's errors if the page logged any.
fn assert_clean_console(browser: &Browser, page: &str) {
    let errors = browser.console_errors();
    assert!(
        errors.is_empty(),
        "the {page} page logged errors: {errors:#?}"
    );
}

fn shot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("DISTSCHED_SCREENSHOTS") {
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, browser.screenshot())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// With the full token: the overview shows the leader and the worker
/// count; a task submitted through the API is on the Tasks page and its
/// page shows its log line; a payload search finds it and only it; the
/// Jobs page shows a job's next five fire times (as the API computes
/// them); the Workers page marks the leader; the Failures page groups a
/// failure; cancelling a delayed task from its page cancels it. No page
/// logs a console error.
#[test]
fn pages_show_the_cluster_and_actions_work_with_the_full_token() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let dash = Dash::start("ui-full", &[]);
    let shell = dash.submit(json!({
        "executor": "shell",
        "payload": {"argv": ["sh", "-c", "echo dashboard-log-line-7"], "input": {"needle": "findme-needle-31"}},
        "max_retries": 0,
    }));
    let other = dash.submit(json!({"executor": "noop", "payload": {"hay": "stack"}}));
    let failing = dash.submit(json!({
        "executor": "shell",
        "payload": {"argv": ["sh", "-c", "echo broken 1234 >&2; exit 3"]},
        "max_retries": 0,
    }));
    dash.wait_status(&shell, "success");
    dash.wait_status(&other, "success");
    dash.wait_status(&failing, "failed");
    let (status, _) = dash.call(
        "POST",
        "/jobs",
        FULL,
        Some(json!({"id": "every-5-min", "executor": "noop", "cron": "*/5 * * * *"})),
    );
    assert_eq!(status, 201);

    let browser = Browser::start(1200, 900);
    sign_in(&browser, &dash, FULL);
    // Overview: the leader and the worker count.
    let leader = browser.wait_js(
        WAIT,
        "the overview names the leader",
        "const v = document.querySelector('[data-test=leader] .value'); return v && v.dataset.value",
        json!([]),
    );
    assert_eq!(leader, json!(dash.node.id()));
    assert_eq!(browser.text("[data-test=workers] .value"), "1");
    assert_eq!(browser.text("#role"), "full access");
    assert_eq!(browser.count("svg polyline[data-series]"), 3, "the chart");
    assert_clean_console(&browser, "overview");
    shot(&browser, "overview-light");
    browser.click("#theme");
    browser.wait_js(
        WAIT,
        "the dark theme",
        "return document.documentElement.dataset.theme === 'dark'",
        json!([]),
    );
    shot(&browser, "overview-dark");
    browser.click("#theme");

    // Tasks: the submitted task is listed; its page shows its log line.
    open(&browser, &dash, "/tasks", "tasks");
    browser.wait_element(WAIT, &format!("tr[data-task='{shell}']"));
    browser.click(&format!("tr[data-task='{shell}'] a"));
    wait_page(&browser, "tasks");
    browser.wait_js(
        WAIT,
        "the task page shows the log line",
        "const l = document.getElementById('log'); return l && l.textContent.includes('dashboard-log-line-7')",
        json!([]),
    );
    assert_eq!(browser.text("#task-id"), shell);
    assert!(browser.text("#payload").contains("findme-needle-31"));
    assert_eq!(browser.count("#attempts tr[data-attempt]"), 1);
    assert_clean_console(&browser, "task");

    // Search by payload substring: only that task.
    open(&browser, &dash, "/tasks", "tasks");
    browser.js(
        "document.querySelector('[data-filter=mode]').value = 'payload'",
        json!([]),
    );
    browser.type_into("[data-filter=q]", "findme-needle");
    browser.click("#apply");
    browser.wait_js(
        WAIT,
        "the search is in the URL and applied",
        "return location.hash.includes('payload=findme-needle') && \
         document.getElementById('page').dataset.ready === '1' && \
         document.querySelectorAll('tr[data-task]').length === 1",
        json!([]),
    );
    assert_eq!(browser.count(&format!("tr[data-task='{shell}']")), 1);
    assert!(
        browser.text("#scanned").starts_with("Looked at 3 tasks"),
        "{}",
        browser.text("#scanned")
    );
    assert_clean_console(&browser, "search");
    shot(&browser, "tasks-light");

    // Jobs: the next five fire times, as the API computes them.
    open(&browser, &dash, "/jobs", "jobs");
    let fires = browser.wait_js(
        WAIT,
        "the job's next fire times are shown",
        "const c = document.querySelectorAll(\"tr[data-job='every-5-min'] [data-fire]\"); \
         return c.length === 5 && [...c].map((e) => Number(e.dataset.fire))",
        json!([]),
    );
    let (_, next) = dash.get("/jobs/every-5-min/next?count=5");
    assert_eq!(fires, next["next"], "the page shows the API's fire times");
    let times = fires.as_array().unwrap();
    assert!(
        times
            .windows(2)
            .all(|w| w[1].as_i64().unwrap() - w[0].as_i64().unwrap() == 300_000)
    );
    assert_clean_console(&browser, "jobs");
    shot(&browser, "jobs-light");

    // Workers: the node, marked as the leader.
    open(&browser, &dash, "/workers", "workers");
    browser.wait_element(
        WAIT,
        &format!("tr[data-node='{}'] [data-leader]", dash.node.id()),
    );
    assert_clean_console(&browser, "workers");

    // Failures: the failed task, its error normalised.
    open(&browser, &dash, "/failures", "failures");
    browser.wait_element(WAIT, "tr[data-group]");
    let group = browser.js(
        "return document.querySelector('tr[data-group]').dataset.group",
        json!([]),
    );
    assert_eq!(group, json!("exit #: broken #"));
    assert_eq!(browser.text("#failed-hour"), "1");
    browser.click("tr[data-group] td:last-child a");
    browser.wait_element(WAIT, &format!("tr[data-task='{failing}']"));
    assert_eq!(
        browser.count("tr[data-task]"),
        1,
        "the group's link lists its task"
    );
    assert_clean_console(&browser, "failures");
    shot(&browser, "failures-light");

    // Cancel a delayed task from its page.
    let delayed = dash.submit(json!({"executor": "noop", "delay_ms": 600_000}));
    open(&browser, &dash, &format!("/tasks/{delayed}"), "tasks");
    browser.click("button[data-action=cancel]");
    browser.wait_js(
        WAIT,
        "the page shows the task cancelled",
        "const b = document.querySelector('h1 [data-status]'); return b && b.dataset.status === 'cancelled'",
        json!([]),
    );
    assert_eq!(
        dash.get(&format!("/tasks/{delayed}")).1["status"],
        json!("cancelled")
    );
    assert_eq!(
        browser.count("button[data-action=cancel]"),
        0,
        "no cancel once ended"
    );
    assert_clean_console(&browser, "task (cancel)");

    // A phone-width screen: no page is wider than the window (wide tables
    // scroll inside their panel).
    browser.set_window(390, 844);
    let detail = format!("/tasks/{shell}");
    for (hash, name) in [
        ("/", "overview"),
        ("/tasks", "tasks"),
        ("/jobs", "jobs"),
        ("/workers", "workers"),
        ("/failures", "failures"),
        (detail.as_str(), "tasks"),
    ] {
        open(&browser, &dash, hash, name);
        let fits = browser.js(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            json!([]),
        );
        assert_eq!(fits, json!(true), "#{hash} is wider than a phone");
        if name == "overview" {
            shot(&browser, "overview-phone");
        }
    }
    assert_clean_console(&browser, "phone width");
}

/// With the read token: no action button on any page, the role says
/// "read only", and a write forged from the page gets 403 and changes
/// nothing.
#[test]
fn the_read_token_sees_no_action_and_cannot_write() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let dash = Dash::start("ui-read", &[]);
    let delayed = dash.submit(json!({"executor": "noop", "delay_ms": 600_000}));
    let done = dash.submit(json!({"executor": "noop"}));
    dash.wait_status(&done, "success");
    let (status, _) = dash.call(
        "POST",
        "/jobs",
        FULL,
        Some(json!({"id": "nightly", "executor": "noop", "cron": "0 3 * * *"})),
    );
    assert_eq!(status, 201);

    let browser = Browser::start(1200, 900);
    sign_in(&browser, &dash, READ);
    assert_eq!(browser.text("#role"), "read only");
    for (hash, name) in [
        (format!("/tasks/{delayed}"), "tasks"),
        (format!("/tasks/{done}"), "tasks"),
        ("/tasks".to_string(), "tasks"),
        ("/jobs".to_string(), "jobs"),
        ("/jobs/nightly".to_string(), "jobs"),
        ("/workers".to_string(), "workers"),
        ("/failures".to_string(), "failures"),
        ("/".to_string(), "overview"),
    ] {
        open(&browser, &dash, &hash, name);
        assert_eq!(
            browser.count("button.action, [data-action]"),
            0,
            "an action on #{hash} with the read token"
        );
        assert_clean_console(&browser, &hash);
    }
    // A write forged from the page, with the page's own token.
    let forged = browser.js_async(
        "const done = arguments[arguments.length - 1]; \
         fetch('tasks/' + arguments[0] + '/cancel', {method: 'POST', \
           headers: {Authorization: 'Bearer ' + sessionStorage.getItem('distsched.token')}}) \
         .then((r) => done(r.status), (e) => done(String(e)))",
        json!([delayed]),
    );
    assert_eq!(forged, json!(403));
    assert_eq!(
        dash.get(&format!("/tasks/{delayed}")).1["status"],
        json!("pending"),
        "the forged cancel changed nothing"
    );
    let (status, _) = dash.call("POST", &format!("/tasks/{delayed}/cancel"), READ, None);
    assert_eq!(status, 403);
    let (status, _) = dash.call("DELETE", "/jobs/nightly", READ, None);
    assert_eq!(status, 403);
    assert_eq!(dash.get("/jobs/nightly").0, 200, "the job is still there");
}

/// A running shell task that prints `::progress N text` lines: its page
/// (refreshing every 2 s) shows a progress bar that moves and new log
/// lines while the task is still running, then the end. The task loops
/// until the test creates a file, so "before it ends" is certain however
/// slow the machine.
#[test]
fn a_running_task_shows_a_moving_progress_bar_and_new_log_lines() {
    let _one = BROWSERS.lock().unwrap_or_else(|p| p.into_inner());
    let dash = Dash::start("ui-live", &[]);
    let dir = support::TempDir::new("ui-live");
    let release = dir.join("release");
    let script = format!(
        "i=0; while [ ! -e '{}' ]; do i=$((i+1)); echo line-$i; \
         p=$((i * 4)); [ $p -gt 99 ] && p=99; echo \"::progress $p copying chunk $i\"; sleep 0.3; done; \
         echo finished",
        release.display()
    );
    let id = dash.submit(json!({
        "executor": "shell",
        "payload": {"argv": ["sh", "-c", script]},
        "max_retries": 0,
        "timeout_ms": 120_000,
    }));
    dash.wait_status(&id, "running");

    let browser = Browser::start(1200, 900);
    sign_in(&browser, &dash, FULL);
    browser.js(
        "const s = document.getElementById('refresh'); s.value = '2'; s.dispatchEvent(new Event('change'))",
        json!([]),
    );
    open(&browser, &dash, &format!("/tasks/{id}"), "tasks");
    let state = "const v = document.getElementById('progress-value'); \
         const log = document.getElementById('log').textContent; \
         const b = document.querySelector('h1 [data-status]'); \
         return v && b.dataset.status === 'running' && \
           {percent: Number(v.dataset.percent), text: document.getElementById('progress-text').textContent, \
            lines: (log.match(/stdout: line-/g) || []).length}";
    let first = browser.wait_js(
        WAIT,
        "the page shows progress and log lines of the running task",
        &state.replace(
            "return v &&",
            "return v && Number(v.dataset.percent) > 0 && log.includes('stdout: line-') &&",
        ),
        json!([]),
    );
    let (p1, lines1) = (
        first["percent"].as_u64().unwrap(),
        first["lines"].as_u64().unwrap(),
    );
    assert!(
        first["text"].as_str().unwrap().starts_with("copying chunk"),
        "{first}"
    );
    let later = browser.wait_js(
        WAIT,
        "the bar moves and new lines come while the task still runs",
        &state.replace(
            "return v &&",
            "return v && Number(v.dataset.percent) > arguments[0] && \
             (log.match(/stdout: line-/g) || []).length > arguments[1] &&",
        ),
        json!([p1, lines1]),
    );
    assert!(later["percent"].as_u64().unwrap() > p1);
    assert_eq!(
        dash.get(&format!("/tasks/{id}")).1["status"],
        json!("running"),
        "still running"
    );
    let (_, task) = dash.get(&format!("/tasks/{id}"));
    assert!(task["progress"]["percent"].as_u64().unwrap() > 0, "{task}");
    assert_clean_console(&browser, "running task");
    shot(&browser, "task-light");
    browser.click("#theme");
    browser.wait_js(
        WAIT,
        "the dark theme",
        "return document.documentElement.dataset.theme === 'dark'",
        json!([]),
    );
    shot(&browser, "task-dark");
    browser.click("#theme");

    std::fs::write(&release, b"").expect("release the task");
    browser.wait_js(
        WAIT,
        "the page shows the task ended and its last line",
        "const b = document.querySelector('h1 [data-status]'); \
         return b && b.dataset.status === 'success' && \
           document.getElementById('log').textContent.includes('stdout: finished') && \
           document.getElementById('progress-value') === null",
        json!([]),
    );
    assert_clean_console(&browser, "ended task");
    let (_, logs) = dash.get(&format!("/tasks/{id}/logs"));
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let numbered: Vec<u64> = lines
        .iter()
        .filter_map(|l| {
            l.split_once("stdout: line-")
                .and_then(|(_, n)| n.parse().ok())
        })
        .collect();
    assert!(
        numbered.windows(2).all(|w| w[1] == w[0] + 1) && numbered.first() == Some(&1),
        "every line once and in order, live and final: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("stdout: ::progress")),
        "progress lines are not output: {lines:#?}"
    );
}

/// A Rust closure reports progress with `ctx.progress` and logs lines
/// while it runs: both reach Redis (`Client::task`, `Client::logs_since`)
/// before it returns; its last progress is stored after it ends.
#[test]
fn a_rust_closure_reports_progress_and_logs_while_it_runs() {
    use distsched::{Client, Config, Node, TaskSpec};
    let redis = RedisServer::start();
    let config = Config {
        redis_url: redis.url(),
        namespace: unique_ns("ui-fn"),
        node_id: "ui-fn".into(),
        capacity: 2,
        ..Config::default()
    };
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    let node = Node::builder(config.clone())
        .function("slow", move |ctx| {
            ctx.log("halfway there");
            ctx.progress(42, "copying chunk 3/7");
            // Runs until the test lets it go.
            release_rx
                .recv_timeout(Duration::from_secs(60))
                .map_err(|e| e.to_string())?;
            ctx.progress(100, "done");
            Ok(json!({"ok": true}))
        })
        .start()
        .expect("start the embedded node");
    let mut client = Client::open(&config.redis_url, &config.namespace).expect("client");
    let id = client.submit(&TaskSpec::new("slow")).expect("submit").id;
    let task = wait_for(WAIT, "the running task shows its progress", || {
        let t = client.task(&id).ok()?;
        t.progress
            .clone()
            .filter(|p| p.percent == 42)
            .map(|p| (t, p))
    });
    assert_eq!(task.0.status, distsched::Status::Running);
    assert_eq!(task.1.text, "copying chunk 3/7");
    let chunk = client.logs_since(&id, 0, 100).expect("logs");
    assert_eq!(
        chunk.lines,
        vec!["[attempt 1] halfway there"],
        "logged while running"
    );
    release_tx.send(()).unwrap();
    let done = client.wait(&id, WAIT).unwrap().expect("ended");
    assert_eq!(done.status, distsched::Status::Success);
    wait_until(WAIT, "the last progress is stored", || {
        client
            .task(&id)
            .ok()
            .and_then(|t| t.progress)
            .is_some_and(|p| p.percent == 100)
    });
    assert_eq!(
        client.logs(&id).unwrap().len(),
        1,
        "the line was not logged twice"
    );
    node.shutdown();
}
