-- Classification is for everyone: any role may use the schema and call the classify
-- functions (SECURITY INVOKER). What the server loads (model, library, provider) is chosen
-- through superuser-only settings, not through these functions.
GRANT USAGE ON SCHEMA txclass TO PUBLIC;
