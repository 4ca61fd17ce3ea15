-- No GPU here: asking for CUDA warns once and serves from the CPU (backend mode: this
-- backend's own session).
SET search_path = public, txclass;
SET txclass.inference = 'backend';
SET txclass.execution_provider = 'cuda';
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
SELECT classify_transaction('SHELL OIL 57444 HOUSTON TX');
SELECT execution_provider FROM model_info();
SET txclass.execution_provider = 'cpu';
SELECT classify_transaction('SHELL OIL 57444 HOUSTON TX');
-- Worker mode (the default where preloaded): the workers' provider is the server's setting; a
-- session that asks for another is told so once, and served.
SET txclass.inference = 'auto';
SET txclass.cache = off;
SET txclass.execution_provider = 'cuda';
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
SELECT classify_transaction('SHELL OIL 57444 HOUSTON TX');
SELECT inference, execution_provider FROM model_info();
RESET txclass.execution_provider;
RESET txclass.cache;
