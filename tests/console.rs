//! The console in a real browser (issue 15): Debian's Chromium, headless, driven through
//! ChromeDriver (fantoccini) against `argus run` on the embedded store, methane readings sent
//! through Kafka while the page is open. A monitor logs in, sees the alert appear without
//! reloading and acknowledges it; a member of the mine's team sees only its team's tickets,
//! accepts one, and the record names them; a member of another team gets "not found" for that
//! ticket's page; English replaces the Chinese strings. Screenshots of each page, at desktop
//! and phone widths, in `<target>/tmp/console/`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::end_to_end::{embedded_store_config, methane_alarm, produce, start_argus, stop_argus};
use crate::util::{free_port, runtime, unique, Topics};

const PASSWORD: &str = "console test password";

/// ChromeDriver, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A user with the test's password, by `argus user add --password-stdin`.
fn add_user(config: &std::path::Path, name: &str, role: &str, town: &str, department: &str) {
    use std::io::Write;
    let mut args = vec![
        "--config".to_owned(),
        config.display().to_string(),
        "user".to_owned(),
        "add".to_owned(),
        name.to_owned(),
        "--display-name".to_owned(),
        format!("{name} 同志"),
        "--role".to_owned(),
        role.to_owned(),
        "--password-stdin".to_owned(),
    ];
    for (flag, value) in [("--town", town), ("--department", department)] {
        if !value.is_empty() {
            args.extend([flag.to_owned(), value.to_owned()]);
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("argus user add: {e}"));
    if let Some(stdin) = child.stdin.as_mut() {
        stdin
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "argus user add {name}");
}

async fn shot(browser: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    for (width, suffix) in [(1280, "desktop"), (390, "phone")] {
        browser
            .set_window_size(width, 900)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = browser.screenshot().await.unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(format!("{name}-{suffix}.png")), png)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    browser
        .set_window_size(1280, 900)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn log_in(browser: &Client, base: &str, name: &str) {
    browser
        .goto(&format!("{base}/console/login"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let form = browser
        .wait()
        .for_element(Locator::Css("form#login"))
        .await
        .unwrap_or_else(|e| panic!("no login form: {e}"));
    form.find(Locator::Css("input[name=name]"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .send_keys(name)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    form.find(Locator::Css("input[name=password]"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .send_keys(PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .wait()
        .for_element(Locator::Css("#logout:not([hidden])"))
        .await
        .unwrap_or_else(|e| panic!("{name} not logged in: {e}"));
}

/// Click the first element matching `css`, waiting for one.
async fn click(browser: &Client, css: &str) {
    browser
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// The text of the first element matching `css`, waiting for one.
async fn text(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_console_in_a_real_browser() {
    let id = unique("console");
    let topics = Topics::named(&id);
    let (port, gateway) = (free_port(), free_port());
    let (dir, config) = embedded_store_config(&id, port, gateway, &topics);
    let rt = runtime();
    topics.create(&rt, 1);
    add_user(&config, "liu", "monitor", "", "");
    add_user(&config, "sun", "team", "shaliang", "coal");
    add_user(&config, "zhou", "team", "baiyan", "coal");
    let argus = start_argus(&config, port);
    let driver_port = free_port();
    let _driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver (apt-get install chromium-driver): {e}")),
    );
    let base = format!("http://127.0.0.1:{port}");
    rt.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]
            }),
        );
        let mut browser = None;
        for _ in 0..50 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{driver_port}"))
                .await
            {
                Ok(b) => {
                    browser = Some(b);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let browser = browser.unwrap_or_else(|| panic!("no browser session"));

        // A monitor, the alert console open; the alert arrives without a reload.
        log_in(&browser, &base, "liu").await;
        text(&browser, "h1").await;
        let before = browser
            .find_all(Locator::Css("tr[data-alert]"))
            .await
            .unwrap_or_default()
            .len();
        let methane = methane_alarm();
        // Sent from a thread of its own (this one drives the browser session).
        let topic = topics.readings.clone();
        std::thread::spawn(move || produce(&runtime(), &topic, &methane))
            .join()
            .unwrap_or_else(|_| panic!("producing failed"));
        browser
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css("tr[data-alert] button.ack"))
            .await
            .unwrap_or_else(|e| panic!("no live alert (there were {before}): {e}"));
        assert!(
            text(&browser, "h1 .live").await.contains("实时"),
            "the stream is live"
        );
        shot(&browser, "alerts").await;
        click(&browser, "tr[data-alert] button.ack").await;
        browser
            .send_alert_text("打电话给矿上")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        browser.accept_alert().await.unwrap_or_else(|e| panic!("{e}"));
        browser
            .wait()
            .for_element(Locator::XPath("//td[contains(., 'liu 同志')]"))
            .await
            .unwrap_or_else(|e| panic!("the acknowledgement not shown: {e}"));

        // The mine's team: its inbox, one ticket accepted, the record names the member.
        click(&browser, "#logout").await;
        log_in(&browser, &base, "sun").await;
        let link = browser
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css("#inbox a[href^='/console/tickets/']"))
            .await
            .unwrap_or_else(|e| panic!("no ticket in the inbox: {e}"));
        let rows = browser
            .find_all(Locator::Css("#inbox tr[data-ticket]"))
            .await
            .unwrap_or_default();
        assert_eq!(rows.len(), 1, "the team's one ticket");
        shot(&browser, "inbox").await;
        let ticket_path = link
            .attr("href")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no href"));
        link.click().await.unwrap_or_else(|e| panic!("{e}"));
        click(&browser, "button[data-to=accepted]").await;
        browser
            .wait()
            .for_element(Locator::XPath("//table[@id='record']//td[contains(., 'sun 同志 (sun)')]"))
            .await
            .unwrap_or_else(|e| panic!("the record does not name the member: {e}"));
        assert_eq!(text(&browser, "#ticket-state").await, "已接收");
        shot(&browser, "ticket").await;
        click(&browser, "main p a[href^='/console/enterprises/']").await;
        browser
            .wait()
            .for_element(Locator::Css("main h2"))
            .await
            .unwrap_or_else(|e| panic!("no enterprise page: {e}"));
        shot(&browser, "enterprise").await;

        // Another town's coal team: that ticket does not exist for it.
        click(&browser, "#logout").await;
        log_in(&browser, &base, "zhou").await;
        browser
            .goto(&format!("{base}{ticket_path}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            text(&browser, "#not-found").await.contains("未找到"),
            "another team gets not found"
        );

        // English.
        click(&browser, "#language").await;
        browser
            .wait()
            .for_element(Locator::XPath("//nav/a[.='Alerts']"))
            .await
            .unwrap_or_else(|e| panic!("no English: {e}"));
        assert!(text(&browser, "#not-found").await.starts_with("Not found"));
        browser.close().await.unwrap_or_else(|e| panic!("{e}"));
    });
    stop_argus(argus);
    topics.delete(&rt);
    let _ = std::fs::remove_dir_all(dir);
}
