//! PostgreSQL's binary `COPY` format, for what is read or written by the million: a rebuild
//! reads the log and loads the fresh read model with it. A file is a signature, then per row
//! the number of fields and each field as its length (`-1`: NULL) and its bytes in the type's
//! binary form, then `-1` (PostgreSQL's documentation, "COPY", "Binary Format").

use bytes::{Buf as _, BytesMut};
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryFutureExt as _, TryStreamExt as _};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::{from_db, to_db};
use crate::sql::{Column, Write};
use crate::{StoreError, StoredEvent};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Where `timestamptz` counts from, in microseconds.
const POSTGRES_EPOCH: OffsetDateTime = time::macros::datetime!(2000-01-01 00:00 UTC);

/// Bytes buffered before they are sent.
const CHUNK: usize = 1 << 20;

/// Loads `write`'s rows into its table with `COPY … FROM STDIN (FORMAT binary)`. Every integer
/// column of the table must be `bigint`.
pub(super) async fn load(connection: &mut PgConnection, write: &Write<'_>) -> Result<(), StoreError> {
    let statement = format!("COPY {} ({}) FROM STDIN (FORMAT binary)", write.table, write.columns.join(", "));
    let mut copy = connection.copy_in_raw(&statement).await?;
    let mut buffer = Vec::with_capacity(CHUNK + 4096);
    buffer.extend_from_slice(SIGNATURE);
    buffer.extend_from_slice(&[0; 8]);
    let fields = i16::try_from(write.values.len()).expect("a table has few columns");
    for row in 0..write.rows() {
        buffer.extend_from_slice(&fields.to_be_bytes());
        for column in &write.values {
            field(&mut buffer, column, row);
        }
        if buffer.len() >= CHUNK {
            copy.send(std::mem::take(&mut buffer)).await?;
            buffer.reserve(CHUNK + 4096);
        }
    }
    buffer.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buffer).await?;
    copy.finish().await?;
    Ok(())
}

/// Appends the value of `column` at `row`, as a field.
fn field(buffer: &mut Vec<u8>, column: &Column<'_>, row: usize) {
    fn bytes(buffer: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            None => buffer.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(value) => {
                buffer.extend_from_slice(&i32::try_from(value.len()).expect("a field under 2 GiB").to_be_bytes());
                buffer.extend_from_slice(value);
            }
        }
    }
    match column {
        Column::Int(v) => bytes(buffer, Some(&v[row].to_be_bytes())),
        Column::Text(v) | Column::Json(v) => bytes(buffer, Some(v[row].as_bytes())),
        Column::OptText(v) => bytes(buffer, v[row].map(str::as_bytes)),
        Column::Bool(v) => bytes(buffer, Some(&[u8::from(v[row])])),
        Column::Uuid(v) => bytes(buffer, Some(v[row].as_bytes())),
        Column::OptUuid(v) => bytes(buffer, v[row].as_ref().map(|u| &u.as_bytes()[..])),
        Column::Bytes(v) => bytes(buffer, Some(v[row])),
        Column::OptBytes(v) => bytes(buffer, v[row]),
        Column::Time(v) => {
            let micros = (v[row] - POSTGRES_EPOCH).whole_microseconds();
            bytes(buffer, Some(&i64::try_from(micros).unwrap_or(i64::MAX).to_be_bytes()));
        }
    }
}

/// The log's events in `(after, through]`, in order, read with `COPY (SELECT …) TO STDOUT
/// (FORMAT binary)`.
pub(super) fn log<'c>(
    connection: &'c mut PgConnection,
    after: u64,
    through: u64,
) -> BoxStream<'c, Result<StoredEvent, StoreError>> {
    // Positions are numbers we format ourselves: nothing to inject.
    let statement = format!(
        "COPY (SELECT position, event_id, event_type, event_version, payload::text, recorded_at FROM events \
         WHERE position > {} AND position <= {} ORDER BY position) TO STDOUT (FORMAT binary)",
        to_db(after),
        to_db(through)
    );
    let chunks = async move {
        let chunks = connection.copy_out_raw(&statement).await?;
        Ok::<_, StoreError>(chunks.map_err(StoreError::from))
    }
    .try_flatten_stream();
    let mut decoder = Decoder::default();
    chunks
        .map(move |chunk| chunk.and_then(|chunk| decoder.events(&chunk)))
        .map_ok(|events| futures::stream::iter(events.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// Turns the chunks of a binary `COPY` of event rows into events.
#[derive(Default)]
struct Decoder {
    buffer: BytesMut,
    header_read: bool,
}

impl Decoder {
    /// The events `chunk` completes.
    fn events(&mut self, chunk: &[u8]) -> Result<Vec<StoredEvent>, StoreError> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        if !self.header_read {
            if self.buffer.len() < SIGNATURE.len() + 8 {
                return Ok(events);
            }
            let extension = u32::from_be_bytes(self.buffer[15..19].try_into().expect("4 bytes")) as usize;
            if self.buffer.len() < 19 + extension {
                return Ok(events);
            }
            if &self.buffer[..SIGNATURE.len()] != SIGNATURE {
                return Err(bad("a COPY without the binary signature"));
            }
            self.buffer.advance(19 + extension);
            self.header_read = true;
        }
        while let Some((event, used)) = row(&self.buffer)? {
            self.buffer.advance(used);
            events.extend(event);
        }
        Ok(events)
    }
}

/// The event of the row at the start of `data` and the bytes it takes (`None` for the
/// trailer), or `None` when the row is not all there yet.
fn row(data: &[u8]) -> Result<Option<(Option<StoredEvent>, usize)>, StoreError> {
    let Some(count) = data.get(..2) else { return Ok(None) };
    let count = i16::from_be_bytes(count.try_into().expect("2 bytes"));
    if count == -1 {
        return Ok(Some((None, 2)));
    }
    if count != 6 {
        return Err(bad("an event row of another shape"));
    }
    let mut at = 2;
    let mut fields: [&[u8]; 6] = [&[]; 6];
    for field in &mut fields {
        let Some(length) = data.get(at..at + 4) else { return Ok(None) };
        let length = i32::from_be_bytes(length.try_into().expect("4 bytes"));
        let length = usize::try_from(length).map_err(|_| bad("a NULL in an event row"))?;
        let Some(value) = data.get(at + 4..at + 4 + length) else { return Ok(None) };
        *field = value;
        at += 4 + length;
    }
    let [position, event_id, event_type, event_version, payload, recorded_at] = fields;
    let int = |bytes: &[u8]| bytes.try_into().map(i64::from_be_bytes).map_err(|_| bad("an integer"));
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| bad("text"));
    let event = StoredEvent {
        position: from_db(int(position)?),
        event_id: Uuid::from_slice(event_id).map_err(|_| bad("an event id"))?,
        event_type: text(event_type)?,
        event_version: event_version.try_into().map(i32::from_be_bytes).map_err(|_| bad("a version"))?,
        payload: text(payload)?,
        recorded_at: POSTGRES_EPOCH + time::Duration::microseconds(int(recorded_at)?),
    };
    Ok(Some((Some(event), at)))
}

fn bad(what: &str) -> StoreError {
    StoreError::InvalidRow(format!("binary COPY of the log: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_row_split_anywhere_decodes_once_whole() {
        let mut data = SIGNATURE.to_vec();
        data.extend_from_slice(&[0; 8]);
        let recorded_at = time::macros::datetime!(2026-12-03 10:00:00.123456 UTC);
        let version = 3i32.to_be_bytes();
        let columns = [
            Column::Int(vec![7]),
            Column::Uuid(vec![Uuid::from_u128(9)]),
            Column::Text(vec!["ScoreAwarded"]),
            Column::Bytes(vec![&version]),
            Column::Json(vec![r#"{"a":"\\"}"#]),
            Column::Time(vec![recorded_at]),
        ];
        data.extend_from_slice(&6i16.to_be_bytes());
        for column in &columns {
            field(&mut data, column, 0);
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        for cut in 0..data.len() {
            let mut decoder = Decoder::default();
            let mut events = decoder.events(&data[..cut]).unwrap();
            events.extend(decoder.events(&data[cut..]).unwrap());
            assert_eq!(events.len(), 1, "cut at {cut}");
            let event = &events[0];
            assert_eq!((event.position, event.event_version, event.payload.as_str()), (7, 3, r#"{"a":"\\"}"#));
            assert_eq!((event.event_id, event.recorded_at), (Uuid::from_u128(9), recorded_at));
        }
    }
}
