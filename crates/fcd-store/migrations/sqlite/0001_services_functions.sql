CREATE TABLE services (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE functions (
    account_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    name TEXT NOT NULL,
    etag TEXT NOT NULL,
    code_digest TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, name),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
