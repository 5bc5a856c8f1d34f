//! The scoreboard website, and demo mode.
//!
//! `GET /` serves one self-contained page (embedded in the binary, no build step): the top 10,
//! updated live over Server-Sent Events. In demo mode the page also lets a visitor complete an
//! action: `POST /demo/actions` mints a token with a key generated for this run and records it
//! exactly as `POST /v1/actions` would. Outside demo mode no endpoint mints tokens.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use command_svc::ActionDesk;
use command_svc::{ActionAccepted, ActionError};
use events::catalog::Worth;
use events::{ActionCatalog, ActionClaims, ActionName, DisplayName, KeyId, KeySecret, PlayerId};
use platform::client::ClientIp;
use platform::params::{NoParameters, Strict};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PAGE: &str = include_str!("../assets/index.html");

/// The key demo mode signs with: generated at start, never stored, gone when the process ends.
#[derive(Clone, Debug)]
pub struct DemoKey {
    /// Its key id, `demo`.
    pub kid: KeyId,
    /// 32 random bytes from the operating system.
    pub secret: KeySecret,
}

impl DemoKey {
    /// A fresh key.
    pub fn generate() -> Self {
        // Two v4 UUIDs: 244 random bits from the operating system's generator.
        let bytes = [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat();
        Self { kid: KeyId::parse("demo").expect("a valid key id"), secret: KeySecret::new(bytes).expect("32 bytes") }
    }
}

/// What demo mode needs to complete actions on a visitor's behalf.
#[derive(Clone)]
pub struct Demo {
    /// Where actions are recorded, as for any token.
    pub desk: ActionDesk,
    /// The key the tokens are signed with.
    pub key: DemoKey,
    /// The actions on offer.
    pub catalog: ActionCatalog,
}

impl Demo {
    /// Mints a token for `player` (shown as `name`) completing `action` (reporting `score`, for
    /// an action worth a reported score) and records it through the desk.
    pub async fn complete(
        &self,
        player: &PlayerId,
        name: &DisplayName,
        action: &ActionName,
        score: Option<i64>,
    ) -> Result<(StatusCode, ActionAccepted), ActionError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = ActionClaims {
            jti: Uuid::now_v7(),
            sub: player.clone(),
            act: action.clone(),
            name: Some(name.clone()),
            score,
            iat: now,
            exp: now + 60,
        };
        self.desk.record(&events::mint_for(&self.key.kid, &self.key.secret, &claims, &self.desk.policy)).await
    }
}

/// The player a name stands for: `<prefix>-<name in lower case, dashed>`, or a hash of the
/// name when it has no ASCII letters or digits. Visitors are `demo-…`, simulated players `sim-…`.
fn player_for(prefix: &str, name: &DisplayName) -> PlayerId {
    let lower = name.as_str().to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mut slug = words.join("-");
    slug.truncate(48);
    if slug.is_empty() {
        slug = hex::encode(&Sha256::digest(name.as_str().as_bytes())[..6]);
    }
    PlayerId::parse(format!("{prefix}-{}", slug.trim_end_matches('-'))).expect("a slug is a valid player id")
}

/// The body of `POST /demo/actions`.
#[derive(Debug, Deserialize)]
pub struct DemoAction {
    /// The name the visitor typed.
    pub name: String,
    /// The action; the catalog's first when left out.
    pub action: Option<String>,
    /// The score, for an action worth a reported score.
    pub score: Option<i64>,
}

async fn demo_action(
    State(demo): State<Demo>,
    ClientIp(client): ClientIp,
    body: Result<Json<DemoAction>, JsonRejection>,
) -> Result<(StatusCode, Json<ActionAccepted>), ActionError> {
    demo.desk.limits.check_address(client).map_err(ActionError::RateLimited)?;
    let Json(request) = body.map_err(|rejection| ActionError::InvalidRequest(rejection.body_text()))?;
    let name = DisplayName::parse(request.name.trim()).map_err(|e| ActionError::InvalidRequest(e.to_string()))?;
    let action = match request.action {
        Some(action) => ActionName::parse(action).map_err(|e| ActionError::InvalidRequest(e.to_string()))?,
        None => demo.catalog.actions().next().map(|(name, _)| name.clone()).ok_or(ActionError::Internal)?,
    };
    let (status, accepted) = demo.complete(&player_for("demo", &name), &name, &action, request.score).await?;
    Ok((status, Json(accepted)))
}

/// The live board, as a web page.
#[utoipa::path(get, path = "/", tag = "site",
    responses((status = 200, description = "The page", body = String, content_type = "text/html")))]
pub async fn page_handler(
    State(page): State<Site>,
    Strict(NoParameters {}): Strict<NoParameters>,
) -> impl axum::response::IntoResponse {
    let headers = [
        (axum::http::header::CONTENT_SECURITY_POLICY, page.policy),
        (axum::http::header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff")),
    ];
    (headers, Html(page.body))
}

/// The page, and the content security policy it is served with.
#[derive(Clone)]
pub struct Site {
    body: Bytes,
    policy: axum::http::HeaderValue,
}

impl Site {
    /// `body`, allowed to run only its own inline script and style (by their hashes) and to
    /// reach only the address it came from: it loads nothing from elsewhere, and nothing
    /// injected into it could run.
    fn of(body: String) -> Self {
        let policy = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            inline_hashes(&body, "script"),
            inline_hashes(&body, "style")
        );
        let policy = axum::http::HeaderValue::from_str(&policy).expect("hashes and keywords are header text");
        Self { body: Bytes::from(body), policy }
    }
}

/// The CSP sources of `page`'s inline `<tag>` elements: `'sha256-…'` of each one's text.
fn inline_hashes(page: &str, tag: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let hashes: Vec<String> = page
        .match_indices(&open)
        .filter_map(|(at, _)| {
            let text = &page[at + open.len()..];
            text.find(&close).map(|end| &text[..end])
        })
        .map(|text| {
            format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text)))
        })
        .collect();
    if hashes.is_empty() { "'none'".into() } else { hashes.join(" ") }
}

/// The page's route, described.
#[derive(utoipa::OpenApi)]
#[openapi(paths(page_handler))]
pub struct Page;

/// `GET /` and, in demo mode, `POST /demo/actions`.
pub fn routes(catalog: &ActionCatalog, demo: Option<Demo>) -> Router {
    let settings = serde_json::json!({
        "demo": demo.is_some(),
        "actions": catalog.actions().map(|(name, worth)| {
            let mut action = worth.to_json();
            action["name"] = serde_json::json!(name);
            action
        }).collect::<Vec<_>>(),
    });
    // The settings land inside a <script>: keep `</script>` out of them whatever they hold.
    let page = PAGE.replace("{/*SETTINGS*/}", &settings.to_string().replace('<', "\\u003c"));
    let site = Router::new().route("/", get(page_handler)).with_state(Site::of(page));
    match demo {
        Some(demo) => site.merge(Router::new().route("/demo/actions", post(demo_action)).with_state(demo)),
        None => site,
    }
}

/// In demo mode: `players` simulated players complete actions every few hundred milliseconds,
/// some far more often than others, so the board moves by itself. Stops at `shutdown`.
pub async fn simulate(demo: Demo, players: usize, shutdown: CancellationToken) {
    const NAMES: [&str; 24] = [
        "Ada",
        "Grace",
        "Alan",
        "Margaret",
        "Linus",
        "Barbara",
        "Dennis",
        "Frances",
        "Ken",
        "Radia",
        "Edsger",
        "Hedy",
        "Tim",
        "Katherine",
        "Guido",
        "Sophie",
        "Bjarne",
        "Anita",
        "Donald",
        "Shafi",
        "Niklaus",
        "Jean",
        "Ward",
        "Mary",
    ];
    let players: Vec<(PlayerId, DisplayName)> = (0..players)
        .map(|i| {
            let base = NAMES[i % NAMES.len()];
            let name = if i < NAMES.len() { base.to_string() } else { format!("{base} {}", i / NAMES.len() + 1) };
            let name = DisplayName::parse(name).expect("simulated names are valid");
            (player_for("sim", &name), name)
        })
        .collect();
    let actions: Vec<(ActionName, Worth)> = demo.catalog.actions().map(|(name, worth)| (name.clone(), worth)).collect();
    let mut random = Random::seeded();
    loop {
        let pause = Duration::from_millis(150 + random.below(500));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        // Squaring a uniform pick favours the first players: a few leaders, a long tail.
        let pick = random.below(1000) as usize;
        let (player, name) = &players[(pick * pick / 1000) * players.len() / 1000];
        let (action, worth) = &actions[random.below(actions.len() as u64) as usize];
        let score = match worth {
            Worth::Fixed(_) => None,
            Worth::Reported { min, max } => {
                Some(i64::from(min.get()) + random.below(u64::from(max.get() - min.get()) + 1) as i64)
            }
        };
        if let Err(error) = demo.complete(player, name, action, score).await {
            tracing::debug!(error.message = %error, "simulated action refused");
        }
    }
}

/// xorshift64*: plenty for simulated players, not for anything secret.
struct Random(u64);

impl Random {
    fn seeded() -> Self {
        Self(Uuid::new_v4().as_u64_pair().0 | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_stable_player_ids() {
        let player = |name: &str| player_for("demo", &DisplayName::parse(name).unwrap()).to_string();
        assert_eq!(player("Alice"), "demo-alice");
        assert_eq!(player("  Mary  Jane!! "), "demo-mary-jane");
        assert_eq!(player("李小龍"), player("李小龍"));
        assert!(player("李小龍").starts_with("demo-") && player("李小龍").len() == 17);
        assert_ne!(player("李小龍"), player("王小明"));
        assert!(player(&"x".repeat(64)).len() <= 53);
    }
}
