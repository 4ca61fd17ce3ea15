-- Result type of txclass.classify_transaction_detail().
CREATE TYPE classification AS (
    label      text,   -- the predicted label (merchant class)
    category   text,   -- the label's category from the model's config.json (NULL if it has none)
    confidence real,   -- softmax probability of the label, 0..1
    model      text,   -- identity of the model in force: name@checksum-prefix
    source     text,   -- 'model', or 'rule' when a row of txclass.rules answered
    rule_id    bigint  -- the rule that answered (txclass.rules.id), NULL when the model did
);
COMMENT ON TYPE classification IS 'A txclass prediction: label, category, confidence and the model identity';
