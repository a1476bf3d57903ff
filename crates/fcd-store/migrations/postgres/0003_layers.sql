-- Layers on PostgreSQL: the same tables as SQLite's step 6, text keys in the "C" collation.
CREATE TABLE layers (
    account_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    last_version BIGINT NOT NULL,
    acl BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE layer_versions (
    account_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0,
    code_digest TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name, version),
    FOREIGN KEY (account_id, name) REFERENCES layers (account_id, name)
);
