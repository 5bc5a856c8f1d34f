//! Signed actions minted before the measured window, so that signing does not compete with the
//! server for the cores while it is measured.

use bytes::Bytes;
use events::{ActionClaims, ActionName, KeySet};
use rand::{Rng as _, SeedableRng as _};
use uuid::Uuid;

/// Who completes the actions.
#[derive(Clone, Copy, Debug)]
pub struct Players {
    /// Distinct players, `load-0` … `load-<count - 1>`.
    pub count: u64,
    /// Zipf exponent of their activity: player `load-k` acts in proportion to `1 / (k + 1)^s`
    /// (`0` for uniform).
    pub skew: f64,
}

/// The id of player `k`.
pub fn player(k: u64) -> String {
    format!("load-{k}")
}

/// `count` request bodies `{"token": …}`, each a fresh action (its own `jti`) of `action` by a
/// player drawn from `players`, signed with the first signing key of `keys`, valid for 15 minutes.
/// Minted on every core.
pub fn mint(keys: &KeySet, action: &ActionName, players: Players, count: usize) -> anyhow::Result<Vec<Bytes>> {
    let kid = keys.signing_ids().next().ok_or_else(|| anyhow::anyhow!("no signing key"))?.clone();
    let (_, secret) = keys.get(kid.as_str()).expect("the key just listed");
    let zipf = rand_distr::Zipf::new(players.count as f64, players.skew)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads).max(1);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .enumerate()
            .map(|(thread, from)| {
                let (kid, secret) = (&kid, secret);
                scope.spawn(move || {
                    let mut rng = rand::rngs::SmallRng::seed_from_u64(thread as u64 + 1);
                    (from..(from + chunk).min(count))
                        .map(|_| {
                            let k = rng.sample(zipf) as u64 - 1;
                            body(kid, secret, &claims(action, k, now))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        Ok(handles.into_iter().flat_map(|h| h.join().expect("a minting thread")).collect())
    })
}

/// One more body: an action of player `k`.
pub fn mint_one(keys: &KeySet, action: &ActionName, k: u64) -> Bytes {
    let kid = keys.signing_ids().next().expect("a signing key");
    let (_, secret) = keys.get(kid.as_str()).expect("the key just listed");
    body(kid, secret, &claims(action, k, time::OffsetDateTime::now_utc().unix_timestamp()))
}

fn claims(action: &ActionName, k: u64, now: i64) -> ActionClaims {
    ActionClaims {
        jti: Uuid::new_v4(),
        sub: player(k).parse().expect("a valid player id"),
        act: action.clone(),
        name: None,
        score: None,
        iat: now,
        exp: now + 900,
    }
}

fn body(kid: &events::KeyId, secret: &events::KeySecret, claims: &ActionClaims) -> Bytes {
    Bytes::from(format!("{{\"token\":\"{}\"}}", events::mint(kid, secret, claims)))
}
