-- No GPU here: asking for CUDA warns once and serves from the CPU.
SET search_path = public, txclass;
SET txclass.execution_provider = 'cuda';
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
SELECT classify_transaction('SHELL OIL 57444 HOUSTON TX');
SELECT execution_provider FROM model_info();
SET txclass.execution_provider = 'cpu';
SELECT classify_transaction('SHELL OIL 57444 HOUSTON TX');
