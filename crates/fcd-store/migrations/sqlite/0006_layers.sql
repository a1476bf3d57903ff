-- Layers: one row per layer (its ACL, and the highest version ever published, so a number is
-- never reused), one per published version. A deleted version stays as a tombstone
-- (`deleted` = 1): functions that already use it keep its package (see `referenced_code`).
CREATE TABLE layers (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    last_version INTEGER NOT NULL,
    acl INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE layer_versions (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    code_digest TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name, version),
    FOREIGN KEY (account_id, name) REFERENCES layers (account_id, name)
);
