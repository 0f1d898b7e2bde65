-- colo app guest: schema of the "students" database (run at image build time in single-user
-- mode, one statement per paragraph; see scripts/build-app-guest-image).
CREATE TABLE students (
  id            bigserial   PRIMARY KEY,
  name          text        NOT NULL,
  age           int         NOT NULL CHECK (age BETWEEN 1 AND 150),
  email         text        NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now()
);

CREATE ROLE "www-data" LOGIN;

GRANT SELECT, INSERT ON students TO "www-data";

GRANT USAGE, SELECT ON SEQUENCE students_id_seq TO "www-data";

