-- Each save of an image's annotation bumps its revision; a save that names the revision it
-- edits (If-Match) and finds another is refused (409), so no edit overwrites one it never saw.
ALTER TABLE images ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
