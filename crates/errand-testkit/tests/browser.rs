//! The browser helper against real headless Chromium and a real page served on loopback.

use errand_testkit::browser::{Browser, artifacts_dir};
use serde_json::{Value, json};

const PAGE: &str = r#"<!doctype html>
<html><head><title>browser test</title>
<style>
  body { margin: 0; font-family: sans-serif; }
  #wide { display: none; width: 1200px; height: 20px; background: #c33; }
</style></head>
<body>
  <section id="controls">
    <button id="greet" onclick="this.textContent = 'Clicked'">Click me</button>
    <input id="name" type="text" placeholder="your name">
    <button id="widen" onclick="document.getElementById('wide').style.display = 'block'">Widen</button>
  </section>
  <div id="wide"></div>
</body></html>"#;

/// Serves [`PAGE`] at `/` on a free loopback port; returns its URL.
async fn serve_page() -> String {
    let app =
        axum::Router::new().route("/", axum::routing::get(|| async { axum::response::Html(PAGE) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn drives_a_real_page_in_a_phone_sized_viewport() {
    let Some(browser) = Browser::start_or_skip(390, 844).await else { return };
    let url = serve_page().await;
    browser.goto(&url).await;
    assert_eq!(browser.url().await, url);

    let size = browser.execute("return [window.innerWidth, window.innerHeight]", vec![]).await;
    assert_eq!(size, json!([390, 844]), "the page area start_or_skip asked for");
    browser.set_window_size(600, 400).await;
    browser.set_window_size(390, 844).await;
    assert_eq!(browser.execute("return window.innerWidth", vec![]).await, json!(390));

    let controls = browser.find("#controls").await;
    let greet = controls.find("#greet").await;
    assert_eq!(greet.text().await, "Click me");
    greet.click().await;
    browser
        .wait_for(
            "the button to say it was clicked",
            "document.querySelector('#greet').textContent === 'Clicked'",
        )
        .await;
    assert_eq!(greet.text().await, "Clicked");
    assert_eq!(browser.find_all("button").await.len(), 2);
    assert!(browser.find_all("#missing").await.is_empty());

    let name = browser.find("#name").await;
    name.send_keys("Ada Lovelace").await;
    assert_eq!(name.property("value").await, json!("Ada Lovelace"));
    assert_eq!(name.attribute("value").await, None, "typing changes the property only");
    assert_eq!(name.attribute("placeholder").await.as_deref(), Some("your name"));
    name.clear().await;
    assert_eq!(name.property("value").await, json!(""));

    let overflows = "return document.documentElement.scrollWidth > window.innerWidth";
    assert_eq!(browser.execute(overflows, vec![]).await, Value::Bool(false));
    let wide = browser.find("#wide").await;
    assert!(!wide.is_displayed().await);
    browser.find("#widen").await.click().await;
    assert!(wide.is_displayed().await);
    assert_eq!(browser.execute(overflows, vec![]).await, Value::Bool(true));
    let width = browser.execute("return arguments[0].offsetWidth", vec![wide.to_json()]).await;
    assert_eq!(width, json!(1200));
    assert!(browser.page_text().await.contains("Clicked"));

    let shot = artifacts_dir().join("errand-testkit").join("browser-phone-viewport.png");
    browser.screenshot(&shot).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", shot.display());
    browser.quit().await;
}
