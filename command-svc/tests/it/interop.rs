//! Tokens minted by ordinary JWT libraries of other languages are accepted as SPEC says: PyJWT
//! (Python) and `jsonwebtoken` (Node), installed by `scripts/test` from PyPI and npm.

use std::process::Command;

use serde_json::json;
use testkit::{TEST_KID, TEST_SECRET, TestDb, TestStream};

use crate::support::{config, start, submit};

fn interop_path(variable: &str) -> String {
    std::env::var(variable)
        .unwrap_or_else(|_| panic!("{variable} is unset: run scripts/test, which installs the JWT libraries"))
}

/// Runs `program` on the inline `script` (after `flag`) with `environment`, and returns what it
/// printed: one token.
fn run(program: &str, flag: &str, script: &str, environment: &[(&str, String)]) -> String {
    let output = Command::new(program).arg(flag).arg(script).envs(environment.iter().cloned()).output().unwrap();
    assert!(output.status.success(), "{program}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A token for `claims` (plus `iat` and `exp` from now) minted by PyJWT with the test key.
fn pyjwt(claims: serde_json::Value) -> String {
    let script = "import jwt, json, os, time\n\
                  claims = json.loads(os.environ['CLAIMS'])\n\
                  claims['iat'] = int(time.time())\n\
                  claims['exp'] = claims['iat'] + 300\n\
                  print(jwt.encode(claims, os.environ['SECRET'], algorithm='HS256', headers={'kid': os.environ['KID']}))";
    run(
        "python3",
        "-c",
        script,
        &[
            ("PYTHONPATH", interop_path("SCOREBOARD_INTEROP_PYTHONPATH")),
            ("CLAIMS", claims.to_string()),
            ("SECRET", TEST_SECRET.to_string()),
            ("KID", TEST_KID.to_string()),
        ],
    )
}

/// A token for `claims` minted by Node's `jsonwebtoken` with the test key, which adds `iat`
/// itself; `options` are its sign options (`expiresIn`, `audience`, `issuer`, `notBefore`…).
fn node_jsonwebtoken(claims: serde_json::Value, options: serde_json::Value) -> String {
    let script = "const jwt = require('jsonwebtoken');\n\
                  const options = Object.assign({ algorithm: 'HS256', keyid: process.env.KID }, JSON.parse(process.env.OPTIONS));\n\
                  console.log(jwt.sign(JSON.parse(process.env.CLAIMS), process.env.SECRET, options));";
    run(
        "node",
        "-e",
        script,
        &[
            ("NODE_PATH", interop_path("SCOREBOARD_INTEROP_NODE_PATH")),
            ("CLAIMS", claims.to_string()),
            ("OPTIONS", options.to_string()),
            ("SECRET", TEST_SECRET.to_string()),
            ("KID", TEST_KID.to_string()),
        ],
    )
}

fn action(player: &str) -> serde_json::Value {
    json!({ "jti": uuid::Uuid::new_v4().to_string(), "sub": player, "act": "complete_task", "name": "From a library" })
}

#[tokio::test]
async fn tokens_minted_by_pyjwt_and_node_jsonwebtoken_are_accepted() {
    let (db, stream) = (TestDb::new().await, TestStream::new());
    let svc = start(config(&db.url, &stream, &["--token-issuer=game-backend", "--token-audience=scoreboard"])).await;
    let client = reqwest::Client::new();

    let mut from_python = action("py-player");
    from_python["iss"] = json!("game-backend");
    from_python["aud"] = json!("scoreboard");
    from_python["level"] = json!({ "world": 3, "boss": "dragon" });
    let (status, _, body) = submit(&client, &svc.url, &pyjwt(from_python)).await;
    assert_eq!(status, 201, "PyJWT: {body}");
    assert_eq!(body["player_id"], "py-player");

    let options =
        json!({ "expiresIn": 300, "issuer": "game-backend", "audience": ["billing", "scoreboard"], "notBefore": 0 });
    let mut from_node = action("node-player");
    from_node["session"] = json!("abc");
    let (status, _, body) = submit(&client, &svc.url, &node_jsonwebtoken(from_node, options)).await;
    assert_eq!(status, 201, "jsonwebtoken: {body}");
    assert_eq!(body["player_id"], "node-player");
}

#[tokio::test]
async fn a_library_token_for_another_audience_or_issuer_is_refused() {
    let (db, stream) = (TestDb::new().await, TestStream::new());
    let svc = start(config(&db.url, &stream, &["--token-issuer=game-backend", "--token-audience=scoreboard"])).await;
    let client = reqwest::Client::new();

    let mut for_billing = action("p1");
    for_billing["iss"] = json!("game-backend");
    for_billing["aud"] = json!("billing");
    let (status, _, body) = submit(&client, &svc.url, &pyjwt(for_billing)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_token")), "{body}");

    let options = json!({ "expiresIn": 300, "issuer": "shop", "audience": "scoreboard" });
    let (status, _, body) = submit(&client, &svc.url, &node_jsonwebtoken(action("p2"), options)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_token")), "{body}");

    let options = json!({ "expiresIn": 300, "issuer": "game-backend", "audience": "scoreboard", "notBefore": 600 });
    let (status, _, body) = submit(&client, &svc.url, &node_jsonwebtoken(action("p3"), options)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_not_yet_valid")), "{body}");
}
