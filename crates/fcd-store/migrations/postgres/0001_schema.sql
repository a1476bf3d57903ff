-- The metadata store's schema on PostgreSQL: the same tables as the SQLite steps 1-5, with
-- every text key in the "C" collation so names order and compare bytewise as in SQLite (the
-- listings page by `name >= from`, and FC orders "s-b." before "s.").
CREATE TABLE services (
    account_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    last_version BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE functions (
    account_id TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    etag TEXT NOT NULL,
    code_digest TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, name),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
CREATE TABLE service_versions (
    account_id TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    version_id BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, version_id),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
CREATE TABLE aliases (
    account_id TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, name),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
CREATE TABLE on_demand_configs (
    account_id TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    qualifier TEXT COLLATE "C" NOT NULL,
    function_name TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, qualifier, function_name),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
CREATE INDEX on_demand_configs_by_resource ON on_demand_configs (account_id, resource);
CREATE TABLE provision_configs (
    account_id TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    qualifier TEXT COLLATE "C" NOT NULL,
    function_name TEXT COLLATE "C" NOT NULL,
    target BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, qualifier, function_name),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
CREATE TABLE ram_users (
    account_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE ram_access_keys (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL,
    user_name TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    FOREIGN KEY (account_id, user_name) REFERENCES ram_users (account_id, name)
);
CREATE TABLE ram_policies (
    account_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE ram_roles (
    account_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE ram_attachments (
    account_id TEXT COLLATE "C" NOT NULL,
    principal_kind TEXT COLLATE "C" NOT NULL,
    principal_name TEXT COLLATE "C" NOT NULL,
    policy_type TEXT COLLATE "C" NOT NULL,
    policy_name TEXT COLLATE "C" NOT NULL,
    attach_date TEXT NOT NULL,
    -- The generation the attachment was made in: lists keep the order of attaching.
    seq BIGINT NOT NULL,
    PRIMARY KEY (account_id, principal_kind, principal_name, policy_type, policy_name)
);
CREATE INDEX ram_attachments_by_policy ON ram_attachments (account_id, policy_type, policy_name);
CREATE TABLE iam_generation (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO iam_generation (id, generation) VALUES (1, 0);
CREATE TABLE triggers (
    account_id TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    function_name TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    trigger_type TEXT COLLATE "C" NOT NULL,
    qualifier TEXT COLLATE "C" NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, function_name, name),
    FOREIGN KEY (account_id, service_name, function_name)
        REFERENCES functions (account_id, service_name, name)
);
CREATE INDEX triggers_by_type ON triggers (trigger_type);
CREATE TABLE custom_domains (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX custom_domains_by_account ON custom_domains (account_id, name);
