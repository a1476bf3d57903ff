CREATE TABLE triggers (
    account_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    function_name TEXT NOT NULL,
    name TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, function_name, name),
    FOREIGN KEY (account_id, service_name, function_name)
        REFERENCES functions (account_id, service_name, name)
);
CREATE INDEX triggers_by_type ON triggers (trigger_type);
CREATE TABLE custom_domains (
    name TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX custom_domains_by_account ON custom_domains (account_id, name);
