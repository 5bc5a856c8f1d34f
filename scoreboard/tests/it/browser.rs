//! The website in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver) with the `fantoccini` client. Installs both from Debian's packages when missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use testkit::InProcess;

use crate::support::{post, settings};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs Debian's `chromium` and `chromium-driver` if they are not there.
fn ensure_browser() {
    if std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists() {
        return;
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut command = if root { Command::new("apt-get") } else { Command::new("sudo") };
        if !root {
            command.arg("apt-get");
        }
        let status = command.args(args).env("DEBIAN_FRONTEND", "noninteractive").status().unwrap();
        assert!(status.success(), "apt-get {args:?} failed");
    };
    apt(&["update", "-qq"]);
    apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]);
}

/// A chromedriver process and a headless Chromium session through it.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(width: u32, height: u32) -> Self {
        ensure_browser();
        let port = testkit::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        testkit::wait_for_port(port).await;
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--hide-scrollbars", format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Self { client, driver, _profile: profile }
    }

    async fn run(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Waits (at most 15 s) until `script` returns `true` in the page.
    async fn until(&self, script: &str) {
        testkit::eventually(Duration::from_secs(15), || async {
            (self.run(script).await == json!(true)).then_some(())
        })
        .await;
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Where screenshots go: `SCOREBOARD_SCREENSHOTS` (the README's come from `docs/`), else `target/`.
fn screenshot_path(name: &str) -> PathBuf {
    let folder = std::env::var("SCOREBOARD_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots"));
    std::fs::create_dir_all(&folder).unwrap();
    folder.join(name)
}

async fn start_demo(listener: tokio::net::TcpListener, data: &std::path::Path) -> InProcess {
    start_demo_with(listener, data, &[]).await
}

async fn start_demo_with(
    listener: tokio::net::TcpListener,
    data: &std::path::Path,
    extra: &[(&'static str, String)],
) -> InProcess {
    let mut settings = settings(data);
    settings.retain(|(name, _)| *name != "ACTION_KEYS");
    settings.extend_from_slice(extra);
    let config: scoreboard::Config = testkit::config(&settings, &["--demo"]);
    InProcess::start_on(listener, |listener, stop| scoreboard::run(config, listener, stop)).await
}

const ROWS: &str = "return [...document.querySelectorAll('#board li')].map(li => li.dataset.player)";

#[tokio::test]
async fn a_visitor_sees_the_board_change_live_and_the_page_reconnects_by_itself() {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let scoreboard = start_demo(listener, data.path()).await;
    let client = reqwest::Client::new();
    for (name, action) in [
        ("Ada", "find_secret"),
        ("Grace", "win_match"),
        ("Linus", "finish_level"),
        ("Margaret", "win_match"),
        ("Alan", "complete_task"),
        ("Ada", "daily_login"),
    ] {
        let (status, _) =
            post(&client, &scoreboard.url, "/demo/actions", json!({"name": name, "action": action})).await;
        assert_eq!(status, 201);
    }

    // The page may run only its own inline script and style, and reach only where it came from:
    // everything below (live updates, the demo's actions) works under that policy.
    let page = client.get(&scoreboard.url).send().await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    for directive in ["default-src 'none'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");

    let browser = Browser::open(1280, 900).await;
    browser.client.goto(&scoreboard.url).await.unwrap();
    // The board: live, five players in rank order, names shown.
    browser.until("return document.getElementById('status').classList.contains('live')").await;
    browser.until("return document.querySelectorAll('#board li').length === 5").await;
    assert_eq!(browser.run(ROWS).await, json!(["demo-ada", "demo-grace", "demo-margaret", "demo-linus", "demo-alan"]));
    let first = browser.client.find(Locator::Css("#board li .name")).await.unwrap().text().await.unwrap();
    assert!(first.starts_with("Ada"), "{first}");

    // A visitor completes an action in the demo form; the board changes without a reload.
    browser.run("window.sameDocument = true; return true").await;
    let name = browser.client.find(Locator::Id("name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("Browser Tester").await.unwrap();
    browser.client.find(Locator::Css("#action option[value='find_secret']")).await.unwrap().click().await.unwrap();
    browser.client.find(Locator::Id("complete")).await.unwrap().click().await.unwrap();
    browser.until("return [...document.querySelectorAll('#board li')].some(li => li.dataset.player === 'demo-browser-tester')").await;
    assert_eq!(browser.run("return window.sameDocument === true").await, json!(true), "no reload");
    assert_eq!(browser.run(ROWS).await[1], json!("demo-browser-tester"), "250 points, reached after Ada's 250");
    let note = browser.client.find(Locator::Id("note")).await.unwrap().text().await.unwrap();
    assert!(note.contains("+250 points for Browser Tester"), "{note}");
    tokio::time::sleep(Duration::from_millis(1200)).await; // let the highlight fade
    std::fs::write(screenshot_path("scoreboard.png"), browser.client.screenshot().await.unwrap()).unwrap();

    // The server goes away: the page says it is reconnecting, and comes back by itself.
    scoreboard.stop().await.unwrap();
    browser.until("return document.getElementById('status').classList.contains('reconnecting')").await;
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let scoreboard = start_demo(listener, data.path()).await;
    browser.until("return document.getElementById('status').classList.contains('live')").await;
    post(&client, &scoreboard.url, "/demo/actions", json!({"name": "Alan", "action": "find_secret"})).await;
    browser
        .until("return document.querySelector('#board li[data-player=\"demo-alan\"] .score').textContent === '260'")
        .await;
    assert_eq!(browser.run("return window.sameDocument === true").await, json!(true), "still no reload");
    browser.close().await;

    // On a phone-sized screen.
    let phone = Browser::open(390, 844).await;
    phone.client.goto(&scoreboard.url).await.unwrap();
    phone.until("return document.querySelectorAll('#board li').length === 6").await;
    let overflow = phone.run("return document.documentElement.scrollWidth <= window.innerWidth").await;
    assert_eq!(overflow, json!(true), "nothing wider than the screen");
    std::fs::write(screenshot_path("scoreboard-phone.png"), phone.client.screenshot().await.unwrap()).unwrap();
    phone.close().await;
    scoreboard.stop().await.unwrap();
}

/// An award to the demo visitor called `name`, as demo mode would have recorded it at `at`.
fn demo_award(name: &str, action: &str, points: i64, at: time::OffsetDateTime) -> store::NewEvent {
    let mut event = testkit::award(&format!("demo-{}", name.to_lowercase()), action, points, at);
    if let events::Event::ScoreAwarded(award) = &mut event {
        award.display_name = Some(name.parse().unwrap());
        award.key_id = "demo".parse().unwrap();
    }
    store::NewEvent { event, claims_digest: None }
}

/// Sets a picker of the page to `value`, as a visitor choosing it would.
fn pick(id: &str, value: &str) -> String {
    format!(
        "const e = document.getElementById('{id}'); e.value = '{value}'; e.dispatchEvent(new Event('change')); return e.value"
    )
}

#[tokio::test]
async fn a_visitor_picks_a_weekly_board_sees_last_weeks_winners_and_the_rows_around_them() {
    use events::boards::{Season, SeasonKind};
    use store::EventStore as _;
    let data = tempfile::tempdir().unwrap();
    // Given last week's scores, recorded just before this week began
    let this_week = Season::of(SeasonKind::Weekly, time::OffsetDateTime::now_utc());
    let last_week = Season::of(SeasonKind::Weekly, this_week.starts_at().unwrap() - time::Duration::days(1));
    let (log, _) = store::sqlite::open(data.path()).await.unwrap();
    let at = this_week.starts_at().unwrap() - time::Duration::minutes(5);
    let awards: Vec<store::NewEvent> = [("Hedy", 900), ("Radia", 700), ("Grace", 500)]
        .into_iter()
        .map(|(name, points)| demo_award(name, "win_match", points, at))
        .collect();
    log.append(&awards).await.unwrap();
    drop(log);
    let boards = data.path().join("boards.toml");
    std::fs::write(&boards, "[boards.weekly]\nseason = \"weekly\"\n").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scoreboard = start_demo_with(listener, data.path(), &[("BOARDS", boards.display().to_string())]).await;
    // And this week's
    let client = reqwest::Client::new();
    for (name, action) in
        [("Ada", "find_secret"), ("Grace", "win_match"), ("Linus", "finish_level"), ("Alan", "complete_task")]
    {
        let (status, _) =
            post(&client, &scoreboard.url, "/demo/actions", json!({"name": name, "action": action})).await;
        assert_eq!(status, 201);
    }

    let browser = Browser::open(1280, 1000).await;
    browser.client.goto(&scoreboard.url).await.unwrap();
    browser.until("return document.querySelectorAll('#board li').length === 6").await;
    // When the visitor picks the weekly board: this week's players, live
    browser.until("return document.querySelectorAll('#board-picker option').length === 2").await;
    assert_eq!(browser.run(&pick("board-picker", "weekly")).await, json!("weekly"));
    browser.until("return document.querySelectorAll('#board li').length === 4").await;
    browser.until("return document.getElementById('status').classList.contains('live')").await;
    assert_eq!(browser.run(ROWS).await, json!(["demo-ada", "demo-grace", "demo-linus", "demo-alan"]));
    let seasons = browser.run("return [...document.querySelectorAll('#season-picker option')].map(o => o.value)").await;
    assert_eq!(seasons[0], json!(this_week.to_string()));
    assert_eq!(seasons[1], json!(last_week.to_string()), "the page names last week as the server does");
    // And last week: last week's winners
    browser.run(&pick("season-picker", &last_week.to_string())).await;
    browser.until("return document.querySelectorAll('#board li').length === 3").await;
    assert_eq!(browser.run(ROWS).await, json!(["demo-hedy", "demo-radia", "demo-grace"]));
    // And says who they are: their row is marked, and the rows around them shown
    browser.run(&pick("me", "demo-grace")).await;
    browser.until("return !document.getElementById('around').hidden").await;
    browser.until("return document.querySelector('#board li.me')?.dataset.player === 'demo-grace'").await;
    let around = "return [...document.querySelectorAll('#around-list li')].map(li => li.dataset.player)";
    assert_eq!(browser.run(around).await, json!(["demo-hedy", "demo-radia", "demo-grace"]));
    assert_eq!(browser.run("return document.querySelector('#around-list li.me').dataset.rank").await, json!("3"));
    std::fs::write(screenshot_path("scoreboard-boards.png"), browser.client.screenshot().await.unwrap()).unwrap();
    browser.close().await;
    scoreboard.stop().await.unwrap();
}

#[tokio::test]
async fn a_visitor_picks_a_fastest_lap_board_and_sees_times_lowest_first() {
    use store::EventStore as _;
    let data = tempfile::tempdir().unwrap();
    // Given laps the game's backend reported, in milliseconds
    let (log, _) = store::sqlite::open(data.path()).await.unwrap();
    let at = time::OffsetDateTime::now_utc();
    let laps: Vec<store::NewEvent> = [("Hedy", 83_456), ("Radia", 61_002), ("Hedy", 59_990), ("Grace", 125_000)]
        .into_iter()
        .map(|(name, millis)| demo_award(name, "finish_run", millis, at))
        .collect();
    log.append(&laps).await.unwrap();
    drop(log);
    let boards = data.path().join("boards.toml");
    std::fs::write(&boards, "[boards.fastest]\nactions = [\"finish_run\"]\nseason = \"weekly\"\naggregate = \"min\"\n")
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scoreboard = start_demo_with(listener, data.path(), &[("BOARDS", boards.display().to_string())]).await;

    let browser = Browser::open(1280, 1000).await;
    browser.client.goto(&scoreboard.url).await.unwrap();
    browser.until("return document.querySelectorAll('#board-picker option').length === 2").await;
    // When the visitor picks the fastest-lap board
    assert_eq!(browser.run(&pick("board-picker", "fastest")).await, json!("fastest"));
    // (`global` also shows three rows, in another order: wait for the fastest board's own.)
    browser
        .until(
            "return [...document.querySelectorAll('#board li')].map(li => li.dataset.player).join() \
             === 'demo-hedy,demo-radia,demo-grace'",
        )
        .await;
    // Then each player's best lap shows as a time, the fastest first
    assert_eq!(browser.run(ROWS).await, json!(["demo-hedy", "demo-radia", "demo-grace"]));
    let times = "return [...document.querySelectorAll('#board li .score')].map(s => s.textContent)";
    assert_eq!(browser.run(times).await, json!(["0:59.990", "1:01.002", "2:05.000"]));
    // And the demo form offers only the actions worth fixed points
    let offered = browser.run("return [...document.querySelectorAll('#action option')].map(o => o.value)").await;
    assert!(!offered.as_array().unwrap().contains(&json!("finish_run")), "{offered}");
    browser.close().await;
    scoreboard.stop().await.unwrap();
}
