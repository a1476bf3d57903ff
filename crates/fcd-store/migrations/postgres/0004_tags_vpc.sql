-- Tags on services (FC 2.0) and functions (FC 3.0), keyed by the resource's ARN; the owning
-- service (and function, '' for a service's own tags) is kept so deleting it deletes its tags.
CREATE TABLE resource_tags (
    account_id TEXT COLLATE "C" NOT NULL,
    resource_arn TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    function_name TEXT COLLATE "C" NOT NULL,
    tag_key TEXT COLLATE "C" NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (account_id, resource_arn, tag_key),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
CREATE INDEX resource_tags_by_owner ON resource_tags (account_id, service_name, function_name);
-- VPC bindings of a service: recorded and listed (fcd has no VPCs).
CREATE TABLE vpc_bindings (
    account_id TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    vpc_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, service_name, vpc_id),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
-- On-demand configs are listed by `{service}#{qualifier}#{function}` (their FC resource name
-- `{account}#…` without the account), no longer by `services/{s}.{q}/functions/{f}`.
UPDATE on_demand_configs SET resource = service_name || '#' || qualifier || '#' || function_name;
