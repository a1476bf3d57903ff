CREATE TABLE on_demand_configs (
    account_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    function_name TEXT NOT NULL,
    resource TEXT NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, qualifier, function_name),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
CREATE INDEX on_demand_configs_by_resource ON on_demand_configs (account_id, resource);
CREATE TABLE provision_configs (
    account_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    function_name TEXT NOT NULL,
    target INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, qualifier, function_name),
    FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
);
