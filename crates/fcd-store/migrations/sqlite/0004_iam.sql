CREATE TABLE ram_users (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE ram_access_keys (
    id TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    body TEXT NOT NULL,
    FOREIGN KEY (account_id, user_name) REFERENCES ram_users (account_id, name)
);
CREATE TABLE ram_policies (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE ram_roles (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE ram_attachments (
    account_id TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    principal_name TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    attach_date TEXT NOT NULL,
    -- The generation the attachment was made in: lists keep the order of attaching.
    seq INTEGER NOT NULL,
    PRIMARY KEY (account_id, principal_kind, principal_name, policy_type, policy_name)
);
CREATE INDEX ram_attachments_by_policy ON ram_attachments (account_id, policy_type, policy_name);
CREATE TABLE iam_generation (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO iam_generation (id, generation) VALUES (1, 0);
