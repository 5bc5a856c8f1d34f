//! The events of the log. Each is versioned and never changed once shipped: a new shape is a
//! new version, and [`Event::decode`] upcasts old versions.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{ActionName, DisplayName, KeyId, Operator, PlayerId, Points, Reason};

/// A player was awarded points for an action, on the strength of a verified action token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreAwarded {
    /// This event's id, a UUIDv7 (time-ordered).
    pub event_id: Uuid,
    /// The token's `jti`: one action id is counted at most once, ever.
    pub action_id: Uuid,
    /// The player awarded.
    pub player_id: PlayerId,
    /// The name the token carried for the player, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    /// The action completed.
    pub action: ActionName,
    /// What the award counts on the boards: the points the catalog gave the action when it was
    /// recorded, or, for an action worth a reported score, the score the token reported (within
    /// the catalog's range).
    pub points: Points,
    /// The token's `iat`, Unix seconds.
    pub token_issued_at: i64,
    /// The key that signed the token.
    pub key_id: KeyId,
    /// When the command service recorded the event (microsecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

/// An operator moderated a player: the payload of `PlayerBanned` and `PlayerUnbanned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Moderated {
    /// This event's id, a UUIDv7.
    pub event_id: Uuid,
    /// The player moderated.
    pub player_id: PlayerId,
    /// The operator who did it (their name in `ADMIN_TOKENS`).
    pub operator: Operator,
    /// Why.
    pub reason: Reason,
    /// When the command service recorded the event (microsecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

impl Moderated {
    /// `operator` moderating `player_id` for `reason`, recorded at `recorded_at` (truncated to
    /// microseconds, the precision the stores keep).
    pub fn new(
        event_id: Uuid,
        player_id: PlayerId,
        operator: Operator,
        reason: Reason,
        recorded_at: OffsetDateTime,
    ) -> Self {
        Self { event_id, player_id, operator, reason, recorded_at: stored_precision(recorded_at) }
    }
}

/// `time` truncated to microseconds: what the stores keep, so an event's payload and its row
/// agree to the digit.
pub fn stored_precision(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_microsecond(time.microsecond()).expect("microseconds stay in range")
}

/// An operator took back points: one award's, or all of a player's so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreRevoked {
    /// This event's id, a UUIDv7.
    pub event_id: Uuid,
    /// The player whose points are taken back.
    pub player_id: PlayerId,
    /// The award taken back; absent when all of the player's points so far are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub award: Option<RevokedAward>,
    /// The operator who did it.
    pub operator: Operator,
    /// Why.
    pub reason: Reason,
    /// When the command service recorded the event (microsecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

/// The award a [`ScoreRevoked`] takes back, as the log holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedAward {
    /// The `ScoreAwarded` event's id.
    pub event_id: Uuid,
    /// Its position in the log.
    pub position: u64,
    /// The points it gave.
    pub points: Points,
}

/// Any event of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// See [`ScoreAwarded`].
    ScoreAwarded(ScoreAwarded),
    /// From this position on the player is on no board, and no action counts for them.
    PlayerBanned(Moderated),
    /// A banned player is back, with the score they had.
    PlayerUnbanned(Moderated),
    /// Points taken back.
    ScoreRevoked(ScoreRevoked),
}

/// Why stored bytes could not be read back as an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A type or version this build does not know.
    #[error("unknown event {event_type} v{version}")]
    Unknown {
        /// The stored type name.
        event_type: String,
        /// The stored version.
        version: i32,
    },
    /// The payload does not match its declared type and version.
    #[error("payload of {event_type} v{version} is invalid")]
    Payload {
        /// The stored type name.
        event_type: String,
        /// The stored version.
        version: i32,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

impl Event {
    /// The type name stored beside the payload, e.g. `ScoreAwarded`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::ScoreAwarded(_) => "ScoreAwarded",
            Self::PlayerBanned(_) => "PlayerBanned",
            Self::PlayerUnbanned(_) => "PlayerUnbanned",
            Self::ScoreRevoked(_) => "ScoreRevoked",
        }
    }

    /// The schema version of the payload [`Event::encode`] writes.
    pub fn version(&self) -> i32 {
        1
    }

    /// The event's own id.
    pub fn event_id(&self) -> Uuid {
        match self {
            Self::ScoreAwarded(e) => e.event_id,
            Self::PlayerBanned(e) | Self::PlayerUnbanned(e) => e.event_id,
            Self::ScoreRevoked(e) => e.event_id,
        }
    }

    /// The action id, for events caused by an action token.
    pub fn action_id(&self) -> Option<Uuid> {
        match self {
            Self::ScoreAwarded(e) => Some(e.action_id),
            Self::PlayerBanned(_) | Self::PlayerUnbanned(_) | Self::ScoreRevoked(_) => None,
        }
    }

    /// The player the event is about.
    pub fn player_id(&self) -> &PlayerId {
        match self {
            Self::ScoreAwarded(e) => &e.player_id,
            Self::PlayerBanned(e) | Self::PlayerUnbanned(e) => &e.player_id,
            Self::ScoreRevoked(e) => &e.player_id,
        }
    }

    /// When the event was recorded.
    pub fn recorded_at(&self) -> OffsetDateTime {
        match self {
            Self::ScoreAwarded(e) => e.recorded_at,
            Self::PlayerBanned(e) | Self::PlayerUnbanned(e) => e.recorded_at,
            Self::ScoreRevoked(e) => e.recorded_at,
        }
    }

    /// The payload as JSON text: the exact bytes stored in the log and published.
    pub fn encode(&self) -> String {
        match self {
            Self::ScoreAwarded(e) => serde_json::to_string(e),
            Self::PlayerBanned(e) | Self::PlayerUnbanned(e) => serde_json::to_string(e),
            Self::ScoreRevoked(e) => serde_json::to_string(e),
        }
        .expect("events always serialise")
    }

    /// Reads a stored payload of the given type and version.
    pub fn decode(event_type: &str, version: i32, payload: &[u8]) -> Result<Self, DecodeError> {
        let invalid = |source| DecodeError::Payload { event_type: event_type.to_string(), version, source };
        match (event_type, version) {
            ("ScoreAwarded", 1) => serde_json::from_slice(payload).map(Self::ScoreAwarded).map_err(invalid),
            ("PlayerBanned", 1) => serde_json::from_slice(payload).map(Self::PlayerBanned).map_err(invalid),
            ("PlayerUnbanned", 1) => serde_json::from_slice(payload).map(Self::PlayerUnbanned).map_err(invalid),
            ("ScoreRevoked", 1) => serde_json::from_slice(payload).map(Self::ScoreRevoked).map_err(invalid),
            _ => Err(DecodeError::Unknown { event_type: event_type.to_string(), version }),
        }
    }
}

/// An event with its place in the global log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The global position: 1, 2, 3… with no gaps.
    pub position: u64,
    /// The event.
    pub event: Event,
}

impl Serialize for RecordedEvent {
    /// `{"position", "type", "version", "data"}`: the form the audit API returns.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a, T> {
            position: u64,
            #[serde(rename = "type")]
            event_type: &'static str,
            version: i32,
            data: &'a T,
        }
        let (position, event_type, version) = (self.position, self.event.event_type(), self.event.version());
        match &self.event {
            Event::ScoreAwarded(data) => Wire { position, event_type, version, data }.serialize(serializer),
            Event::PlayerBanned(data) | Event::PlayerUnbanned(data) => {
                Wire { position, event_type, version, data }.serialize(serializer)
            }
            Event::ScoreRevoked(data) => Wire { position, event_type, version, data }.serialize(serializer),
        }
    }
}

#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::openapi::{KnownFormat, Ref, RefOr, SchemaFormat};
    use utoipa::{PartialSchema, ToSchema};

    use super::{Moderated, RecordedEvent, ScoreAwarded, ScoreRevoked};

    impl PartialSchema for RecordedEvent {
        fn schema() -> RefOr<Schema> {
            RecordedEvent::schema_with(|variant| variant)
        }
    }

    impl RecordedEvent {
        /// The schema of an event with more beside it: each variant (one per event type, `type`
        /// naming it, `data` its payload) as `extend` makes it. One `oneOf` of plain objects,
        /// which code generators read (an `allOf` around a `oneOf` they do not).
        pub fn schema_with(extend: impl Fn(ObjectBuilder) -> ObjectBuilder) -> RefOr<Schema> {
            let variant = |name: &str, data: RefOr<Schema>| {
                let object = ObjectBuilder::new()
                    .property(
                        "position",
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                            .minimum(Some(1)),
                    )
                    .required("position")
                    .property("type", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([name])))
                    .required("type")
                    .property("version", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
                    .required("version")
                    .property("data", data)
                    .required("data")
                    .description(Some("An event with its place in the global log"));
                extend(object)
            };
            OneOfBuilder::new()
                .item(variant("ScoreAwarded", Ref::from_schema_name(ScoreAwarded::name()).into()))
                .item(variant("PlayerBanned", Ref::from_schema_name(Moderated::name()).into()))
                .item(variant("PlayerUnbanned", Ref::from_schema_name(Moderated::name()).into()))
                .item(variant("ScoreRevoked", Ref::from_schema_name(ScoreRevoked::name()).into()))
                .into()
        }
    }

    impl ToSchema for RecordedEvent {
        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((ScoreAwarded::name().into(), ScoreAwarded::schema()));
            <ScoreAwarded as ToSchema>::schemas(schemas);
            schemas.push((Moderated::name().into(), Moderated::schema()));
            <Moderated as ToSchema>::schemas(schemas);
            schemas.push((ScoreRevoked::name().into(), ScoreRevoked::schema()));
            <ScoreRevoked as ToSchema>::schemas(schemas);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample() -> Event {
        Event::ScoreAwarded(ScoreAwarded {
            event_id: Uuid::parse_str("01932c4e-7a1b-7c3d-8e9f-000000000001").unwrap(),
            action_id: Uuid::parse_str("01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f").unwrap(),
            player_id: "alice".parse().unwrap(),
            display_name: Some(DisplayName::parse("Alice").unwrap()),
            action: "complete_task".parse().unwrap(),
            points: Points::new(10).unwrap(),
            token_issued_at: 1_767_225_600,
            key_id: "k1".parse().unwrap(),
            recorded_at: datetime!(2026-01-01 00:01:40.123456 UTC),
        })
    }

    #[test]
    fn score_awarded_v1_has_a_stable_wire_form() {
        assert_eq!(
            sample().encode(),
            r#"{"event_id":"01932c4e-7a1b-7c3d-8e9f-000000000001","action_id":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","player_id":"alice","display_name":"Alice","action":"complete_task","points":10,"token_issued_at":1767225600,"key_id":"k1","recorded_at":"2026-01-01T00:01:40.123456Z"}"#
        );
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = sample();
        let decoded = Event::decode(event.event_type(), event.version(), event.encode().as_bytes()).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn unknown_types_versions_and_bad_payloads_are_errors() {
        let payload = sample().encode();
        assert!(matches!(Event::decode("ScoreAwarded", 2, payload.as_bytes()), Err(DecodeError::Unknown { .. })));
        assert!(matches!(Event::decode("Other", 1, payload.as_bytes()), Err(DecodeError::Unknown { .. })));
        let bad = payload.replace("\"points\":10", "\"points\":-1");
        assert!(matches!(Event::decode("ScoreAwarded", 1, bad.as_bytes()), Err(DecodeError::Payload { .. })));
    }

    #[test]
    fn moderation_is_recorded_to_the_microsecond_and_reads_back() {
        let at = datetime!(2026-11-23 13:28:37.513107329 UTC);
        let banned = Event::PlayerBanned(Moderated::new(
            Uuid::now_v7(),
            "alice".parse().unwrap(),
            "ada".parse().unwrap(),
            "speed hack".parse().unwrap(),
            at,
        ));
        assert!(banned.encode().contains(r#""recorded_at":"2026-11-23T13:28:37.513107Z""#), "{}", banned.encode());
        assert_eq!(Event::decode("PlayerBanned", 1, banned.encode().as_bytes()).unwrap(), banned);
        assert!(Event::decode("PlayerUnbanned", 1, banned.encode().as_bytes()).is_ok());
        let json = serde_json::to_value(RecordedEvent { position: 3, event: banned }).unwrap();
        assert_eq!((json["type"].as_str(), json["data"]["operator"].as_str()), (Some("PlayerBanned"), Some("ada")));
    }

    #[test]
    fn recorded_events_serialise_with_position_type_and_version() {
        let json = serde_json::to_value(RecordedEvent { position: 7, event: sample() }).unwrap();
        assert_eq!(json["position"], 7);
        assert_eq!(json["type"], "ScoreAwarded");
        assert_eq!(json["version"], 1);
        assert_eq!(json["data"]["points"], 10);
    }
}
