-- Code packages shared between nodes: one row per package (written in the same transaction as
-- its chunks, so a row means a complete package), its bytes in chunks of at most 1 MiB so no
-- statement carries a whole package. `created_ms` is the database's clock (one clock for every
-- node), refreshed when a package is put again, which the collector's grace period reads.
CREATE TABLE code_packages (
    digest TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    size BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE code_package_chunks (
    digest TEXT COLLATE "C" NOT NULL REFERENCES code_packages (digest) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (digest, seq)
);
