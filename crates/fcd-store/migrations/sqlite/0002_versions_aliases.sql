ALTER TABLE services ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE service_versions (
    account_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, version_id),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
CREATE TABLE aliases (
    account_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    name TEXT NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, name),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
