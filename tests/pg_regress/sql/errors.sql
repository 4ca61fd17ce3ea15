-- Broken model directories are refused with an ERROR naming the file and the fix, and the same
-- backend works again once the setting points at a good model. Fixtures: tests/python/make_fixtures.py.
SET search_path = public, txclass;
SET txclass.model = '/tmp/txclass-fixtures/missing';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = '/tmp/txclass-fixtures/malformed_config';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = '/tmp/txclass-fixtures/no_id2label';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = '/tmp/txclass-fixtures/extra_label';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = '/tmp/txclass-fixtures/corrupt_onnx';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = '/tmp/txclass-fixtures/bad_tokenizer';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = '/tmp/txclass-fixtures/wrong_inputs';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = 'relative/path';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = '/tmp/txclass-fixtures/../txclass-fixtures/good';
SELECT classify_transaction('STARBUCKS');
-- fixed: the same backend serves again
SET txclass.model = '/tmp/txclass-fixtures/good';
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
RESET txclass.model;
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
-- bad arguments
SELECT * FROM classify_topk('STARBUCKS', 0);
-- the SQLSTATE names the cause (what a client branches on): a directory the server cannot read
-- (58030), a model whose files are wrong (F0000), a setting that cannot be used and a bad
-- argument (22023)
\set VERBOSITY sqlstate
SET txclass.model = '/tmp/txclass-fixtures/missing';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = '/tmp/txclass-fixtures/extra_label';
SELECT classify_transaction('STARBUCKS');
SET txclass.model = 'relative/path';
SELECT classify_transaction('STARBUCKS');
RESET txclass.model;
SELECT * FROM classify_topk('STARBUCKS', 0);
SELECT txclass.register_model('broken', '/tmp/txclass-fixtures/missing');
\set VERBOSITY default
-- the txclass. prefix is reserved
SET txclass.no_such_setting = 1;
-- privileges: a plain user classifies but cannot choose the model, the library, the provider
CREATE ROLE txclass_plain;
SET ROLE txclass_plain;
SELECT txclass.classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
SET txclass.model = '/tmp/txclass-fixtures/good';
SET txclass.onnxruntime_library = '/tmp/evil.so';
SET txclass.execution_provider = 'cuda';
SET txclass.intra_op_threads = 8;
SET txclass.max_length = 16;
SET txclass.batch_size = 16;
SHOW txclass.batch_size;
RESET ROLE;
DROP ROLE txclass_plain;
