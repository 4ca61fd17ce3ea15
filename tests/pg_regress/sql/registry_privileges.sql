-- Who may do what: a plain user reads and classifies; txclass_model_admin registers bundled
-- models, activates, rolls back, edits rules; absolute paths need pg_read_server_files.
SET search_path = public, txclass;
CREATE ROLE txclass_plain LOGIN;
CREATE ROLE txclass_admin LOGIN IN ROLE txclass_model_admin;
CREATE ROLE txclass_admin_files LOGIN IN ROLE txclass_model_admin, pg_read_server_files;
GRANT SELECT ON gold TO txclass_plain, txclass_admin;
SET ROLE txclass_plain;
SELECT classify_transaction('STARBUCKS STORE 01234');
SELECT count(*) > 0 AS can_read_registry FROM models;
SELECT register_model('p1', 'txclass-merchants-v1');
SELECT * FROM activate_model('relabelled');
SELECT * FROM rollback_model();
SELECT * FROM txclass._inspect_model('/etc', false);
INSERT INTO models VALUES ('x', '/etc', repeat('0', 64), 1, '{a}', 'me');
UPDATE models SET metrics = '{}';
INSERT INTO deployments (model, action, deployed_by) VALUES ('v1', 'activate', 'me');
INSERT INTO active VALUES (true, 1);
INSERT INTO rules (pattern, label) VALUES ('^x', 'x');
SET txclass.model = '/etc';
SELECT cache_reset();
-- evaluating is open to all, storing it is not
SELECT (evaluate('v1', 'SELECT descriptor, merchant FROM gold', store => false))->>'rows' AS rows;
SELECT evaluate('v1', 'SELECT descriptor, merchant FROM gold');
RESET ROLE;
SET ROLE txclass_admin;
SELECT name FROM register_model('admin-v1', 'txclass-merchants-v1');
SELECT register_model('admin-abs', '/tmp/txclass-fixtures/good');
SELECT model, action, deployed_by FROM activate_model('admin-v1', reason => 'admin');
SELECT model, action, deployed_by FROM rollback_model();
INSERT INTO rules (pattern, label, note) VALUES ('^admin rule', 'Admin', 'by admin') RETURNING label, created_by;
DELETE FROM rules WHERE note = 'by admin';
SELECT (evaluate('admin-v1', 'SELECT descriptor, merchant FROM gold'))->>'rows' AS stored_rows;
-- the admin still cannot write the registry tables directly
INSERT INTO models VALUES ('x', '/etc', repeat('0', 64), 1, '{a}', 'me');
UPDATE active SET deployment = 1;
RESET ROLE;
SET ROLE txclass_admin_files;
SELECT name, registered_by FROM register_model('admin-abs', '/tmp/txclass-fixtures/good');
RESET ROLE;
-- functions that must be SECURITY DEFINER are, with a fixed search_path; the rest are INVOKER
SELECT proname, prosecdef, proconfig FROM pg_proc
WHERE pronamespace = 'txclass'::regnamespace AND (prosecdef OR proconfig IS NOT NULL) ORDER BY proname;
DROP OWNED BY txclass_plain, txclass_admin, txclass_admin_files;
DROP ROLE txclass_plain, txclass_admin, txclass_admin_files;
