-- FC 3.0 concurrency configs (PutConcurrencyConfig): one reservedConcurrency per function,
-- whatever the qualifier. The row goes with its function (ON DELETE CASCADE), so a function
-- created again under the same name starts without a cap.
CREATE TABLE concurrency_configs (
    account_id TEXT NOT NULL,
    service_name TEXT NOT NULL,
    function_name TEXT NOT NULL,
    reserved_concurrency INTEGER NOT NULL,
    created_time TEXT NOT NULL,
    last_modified_time TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, function_name),
    FOREIGN KEY (account_id, service_name, function_name)
        REFERENCES functions (account_id, service_name, name) ON DELETE CASCADE
);
