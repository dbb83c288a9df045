-- PLACEHOLDER: src/tradewind/storage/schema.sql has not been generated yet.
-- Run `make k8s-sync` (k8s/base/sync-files.sh) once it exists; until then
-- PostgreSQL starts empty and the db-writer init container (`tradewind migrate`)
-- creates the schema.
SELECT 1;
