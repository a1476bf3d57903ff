-- FC 3.0 concurrency configs (PutConcurrencyConfig): one reservedConcurrency per function,
-- whatever the qualifier. The row goes with its function (ON DELETE CASCADE), so a function
-- created again under the same name starts without a cap.
CREATE TABLE concurrency_configs (
    account_id TEXT COLLATE "C" NOT NULL,
    service_name TEXT COLLATE "C" NOT NULL,
    function_name TEXT COLLATE "C" NOT NULL,
    reserved_concurrency BIGINT NOT NULL,
    created_time TEXT NOT NULL,
    last_modified_time TEXT NOT NULL,
    PRIMARY KEY (account_id, service_name, function_name),
    FOREIGN KEY (account_id, service_name, function_name)
        REFERENCES functions (account_id, service_name, name) ON DELETE CASCADE
);
