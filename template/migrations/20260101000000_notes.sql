-- The notes resource (src/plugins/notes.rs). sqlx records each applied migration in
-- _sqlx_migrations; add a new file for each change instead of editing this one.
CREATE TABLE notes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body TEXT NOT NULL DEFAULT '' CHECK (char_length(body) <= 10000)
);
