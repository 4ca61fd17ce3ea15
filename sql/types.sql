-- Result type of txclass.classify_transaction_detail().
CREATE TYPE classification AS (
    label      text,   -- the predicted label (merchant class)
    category   text,   -- the label's category from the model's config.json (NULL if it has none)
    confidence real,   -- the calibrated probability of the model's label, 0..1 (1 for a rule)
    model      text,   -- identity of the model in force: name@checksum-prefix
    source     text,   -- 'model'; 'rule' when a row of txclass.rules answered; 'abstain' when the
                       -- model's confidence is below txclass.min_confidence (label and category NULL)
    rule_id    bigint, -- the rule that answered (txclass.rules.id), NULL when the model did
    level      text    -- very_high, high, medium or low (txclass.confidence_info() has the thresholds)
);
COMMENT ON TYPE classification IS 'A txclass prediction: label, category, confidence and the model identity';
