-- What the lenient parser had to tolerate to read a callback: a JSON array of "path: what"
-- strings (empty when the callback was well-formed).
ALTER TABLE op_callback ADD COLUMN tolerated TEXT NOT NULL DEFAULT '[]';
