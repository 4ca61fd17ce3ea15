-- Result type of txclass.classify_transaction_detail().
CREATE TYPE classification AS (
    label      text,   -- the predicted label (merchant class)
    category   text,   -- the label's category from the model's config.json (NULL if it has none)
    confidence real,   -- softmax probability of the label, 0..1
    model      text    -- identity of the model that answered: name@checksum-prefix
);
COMMENT ON TYPE classification IS 'A txclass prediction: label, category, confidence and the model identity';
