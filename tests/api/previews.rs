//! Preview links and the browser's artifact (SPEC §6): a link opens one model's info and
//! artifact without a login; forged, expired and revoked links get 403 with a reason; the
//! web artifact carries exactly the stored weights and travels in under 6 MB.

use std::io::Read;

use integration_tests::{Backend, Res, TestApp, both_backends, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::predict::trained_model;
use super::training::{TRAINING, shapes};

/// GET without a login; returns status, `error.code` (if any), Content-Encoding and body.
async fn anonymous(app: &TestApp, path: &str, gzip: bool) -> (StatusCode, String, String, Vec<u8>) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", app.url));
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let encoding = res
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = res.bytes().await.unwrap().to_vec();
    let code = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code, encoding, bytes)
}

/// A browser's revalidation of a cached artifact: GET with `If-None-Match`, no login.
async fn revalidate(app: &TestApp, path: &str, etag: &str) -> (StatusCode, String) {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", app.url))
        .header("accept-encoding", "gzip")
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    let r = Res::read(res).await;
    (r.status, r.code().to_owned())
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn preview_links_and_web_artifact(backend: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(backend, &[("workers", "1")]).await;
    let (instance, ds) = shapes(&app).await;
    let model = trained_model(&app, instance, ds, "prev", &["circle", "square"]).await;

    // A link with the default lifetime (24 h), its QR code and URL.
    let r = app
        .admin(
            Method::POST,
            &format!("/api/models/{model}/preview-links"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let link_id = r.body["id"].as_i64().unwrap();
    let url = r.body["url"].as_str().unwrap();
    assert_eq!(url, format!("{}/p/{token}", app.url));
    let svg = r.body["qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<path"), "{svg}");
    assert_eq!(r.body["revoked"], false);
    assert_eq!(r.body["expired"], false);
    let lifetime = parse_rfc3339(r.body["expires_at"].as_str().unwrap())
        - parse_rfc3339(r.body["created_at"].as_str().unwrap());
    assert!((86_399..=86_401).contains(&lifetime), "{lifetime}");

    // Without a login: the preview info and the artifact, nothing else.
    let (status, _, _, body) = anonymous(&app, &format!("/api/preview/{token}"), false).await;
    assert_eq!(status, StatusCode::OK);
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["model_id"], model);
    assert_eq!(info["labels"], json!(["circle", "square"]));
    assert_eq!(info["image_size"], 64);
    assert!(info["metrics"]["accuracy"].as_f64().is_some(), "{info}");
    let artifact_url = info["artifact_url"].as_str().unwrap();
    let (status, code, _, _) =
        anonymous(&app, &format!("/api/models/{model}/artifact"), false).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );

    // The web artifact: gzip on the wire, under 6 MB, and the stored weights exactly.
    let (status, _, encoding, gz) = anonymous(&app, artifact_url, true).await;
    assert_eq!((status, encoding.as_str()), (StatusCode::OK, "gzip"));
    assert!(gz.len() < 6_000_000, "{} bytes transferred", gz.len());
    let web = gunzip(&gz);
    let (meta, weights) = shared::model::artifact::decode_web(&web).unwrap();
    assert_eq!(meta.labels, ["circle", "square"]);
    let tar = app
        .admin(Method::GET, &format!("/api/models/{model}/artifact"), None)
        .await;
    assert_eq!(tar.status, StatusCode::OK);
    let (stored_meta, stored_weights) = autolearn_server::artifact::unpack(&tar.bytes).unwrap();
    assert_eq!(meta, stored_meta);
    assert!(
        weights == stored_weights,
        "the web form carries the stored weights"
    );
    // A client that does not take gzip gets the same bytes plain.
    let (status, _, encoding, plain) = anonymous(&app, artifact_url, false).await;
    assert_eq!((status, encoding.as_str()), (StatusCode::OK, ""));
    assert!(plain == web);
    println!(
        "web artifact: {} bytes of weights, {} bytes transferred",
        weights.len(),
        gz.len()
    );

    // The link reads this model only.
    let other = format!(
        "/api/models/{}/artifact?format=web&preview={token}",
        model + 1000
    );
    let (status, code, _, _) = anonymous(&app, &other, false).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "preview_other_model")
    );

    // Forged: a changed character, a token of another server, a stretched expiry.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let parts: Vec<&str> = token.splitn(3, '.').collect();
    let stretched = format!(
        "{}.{}.{}",
        parts[0],
        parts[1].parse::<i64>().unwrap() + 3600,
        parts[2]
    );
    for bad in [
        forged.as_str(),
        "1.99999999999.AAAAAAAAAAAAAAAAAAAAAA",
        &stretched,
        "garbage",
    ] {
        for path in [
            format!("/api/preview/{bad}"),
            format!("/api/models/{model}/artifact?format=web&preview={bad}"),
        ] {
            let (status, code, _, _) = anonymous(&app, &path, false).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::FORBIDDEN, "preview_invalid"),
                "{path}"
            );
        }
    }

    // Expired: a one-second link, two seconds later on the server's clock.
    let r = app
        .admin(
            Method::POST,
            &format!("/api/models/{model}/preview-links"),
            Some(json!({"expires_in_hours": 1.0 / 3600.0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let short = r.body["token"].as_str().unwrap().to_owned();
    app.state.clock.advance(2);
    for path in [
        format!("/api/preview/{short}"),
        format!("/api/models/{model}/artifact?format=web&preview={short}"),
    ] {
        let (status, code, _, _) = anonymous(&app, &path, false).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "preview_expired")
        );
    }

    // Bad lifetimes are refused, naming the field.
    for hours in [json!(0), json!(-1), json!(24 * 31)] {
        let r = app
            .admin(
                Method::POST,
                &format!("/api/models/{model}/preview-links"),
                Some(json!({"expires_in_hours": hours})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{hours}");
        assert_eq!(r.body["error"]["field"], "expires_in_hours");
    }

    // A browser may keep the artifact but must ask again before each use: no year-long
    // `immutable` cache, an ETag, and a bodiless 304 while the link is valid.
    let res = reqwest::Client::new()
        .get(format!("{}{artifact_url}", app.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let header = |h: &str| {
        res.headers()
            .get(h)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (cache, etag) = (header("cache-control"), header("etag"));
    assert!(
        cache.contains("no-cache") && !cache.contains("immutable") && !cache.contains("max-age"),
        "{cache}"
    );
    assert!(!etag.is_empty(), "an ETag to revalidate with");
    assert_eq!(
        revalidate(&app, artifact_url, &etag).await,
        (StatusCode::NOT_MODIFIED, String::new())
    );

    // Revoked: at once, for the info and the artifact (also for a browser that cached it);
    // revoking twice is a conflict.
    let r = app
        .admin(
            Method::DELETE,
            &format!("/api/preview-links/{link_id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for path in [format!("/api/preview/{token}"), artifact_url.to_owned()] {
        let (status, code, _, _) = anonymous(&app, &path, false).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "preview_revoked")
        );
    }
    assert_eq!(
        revalidate(&app, artifact_url, &etag).await,
        (StatusCode::FORBIDDEN, "preview_revoked".to_owned())
    );
    let r = app
        .admin(
            Method::DELETE,
            &format!("/api/preview-links/{link_id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .admin(
            Method::GET,
            &format!("/api/models/{model}/preview-links"),
            None,
        )
        .await;
    let links = r.body.as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["expired"], true);
    assert_eq!(links[1]["revoked"], true);

    // A user who may only look at the instance cannot publish it.
    let (_, viewer) = app
        .user_with(
            "viewer",
            json!([{"permission": "ListInstance", "instance_id": instance}]),
        )
        .await;
    let r = app
        .call(
            Some(&viewer),
            Method::POST,
            &format!("/api/models/{model}/preview-links"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SSZ` (days from the civil calendar).
fn parse_rfc3339(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
}

both_backends!(preview_links_and_web_artifact);
