-- As in migrations/postgres/0009_board_changes.sql.
CREATE TABLE board_changes (
    position      INTEGER PRIMARY KEY,
    from_position INTEGER NOT NULL,
    standings     BLOB    NOT NULL
);
