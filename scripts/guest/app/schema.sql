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


-- amcheck: GET /check verifies the table's heap and its index with PostgreSQL's own checker (the
-- survivor of a failover must pass it without any manual recovery).
CREATE EXTENSION amcheck;

GRANT EXECUTE ON FUNCTION verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO "www-data";

GRANT EXECUTE ON FUNCTION bt_index_check(regclass, boolean) TO "www-data";
