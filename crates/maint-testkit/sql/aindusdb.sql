-- An AindusDB-shaped database for tests and the demo: schema "aindusdb" as AindusDB Core lays
-- it out (pgvector embeddings with HNSW indexes, GIN on jsonb and tsvector, row-level
-- security), filled with :docs documents and then churned. Into a fresh database:
--
--   psql -v docs=3000 -f crates/maint-testkit/sql/aindusdb.sql "$url"
--
-- maint_testkit::aindusdb::create runs this same file (the psql meta-commands, lines starting
-- with a backslash, left out; :docs replaced by the count). Counts are exact functions of
-- :docs; vectors and words come from random() after setseed, so one count gives one database.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
-- HNSW builds stay in memory (pgvector warns and slows down past maintenance_work_mem), in
-- this backend: a parallel build puts maintenance_work_mem in /dev/shm, 64 MB in a container.
SET maintenance_work_mem = '512MB';
SET max_parallel_maintenance_workers = 0;
DO $$ BEGIN PERFORM setseed(0.21); END $$;

CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA aindusdb;

CREATE TABLE aindusdb.tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(255) NOT NULL UNIQUE,
    is_active boolean NOT NULL DEFAULT true,
    settings jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE aindusdb.users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES aindusdb.tenants (id) ON DELETE CASCADE,
    username varchar(255) NOT NULL,
    email varchar(255) NOT NULL,
    password_hash varchar(255) NOT NULL,
    role varchar(20) NOT NULL DEFAULT 'user',
    is_active boolean NOT NULL DEFAULT true,
    is_superuser boolean NOT NULL DEFAULT false,
    last_login timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, username),
    UNIQUE (tenant_id, email)
);

CREATE TABLE aindusdb.collections (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES aindusdb.tenants (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL,
    description text,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE aindusdb.documents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES aindusdb.tenants (id) ON DELETE CASCADE,
    collection_id uuid REFERENCES aindusdb.collections (id) ON DELETE SET NULL,
    content text NOT NULL,
    title varchar(1000),
    metadata jsonb NOT NULL DEFAULT '{}',
    embedding_text vector(384),
    embedding_image vector(512),
    embedding_audio vector(512),
    embedding_video vector(512),
    embedding_3d vector(256),
    file_type varchar(50),
    file_size bigint,
    checksum varchar(64),
    content_tsvector tsvector GENERATED ALWAYS AS (to_tsvector('french', content)) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE aindusdb.user_sessions (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES aindusdb.users (id) ON DELETE CASCADE,
    session_token varchar(255) NOT NULL UNIQUE,
    ip_address inet,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_activity timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    revoked_at timestamptz
);

CREATE TABLE aindusdb.audit_logs (
    id bigserial PRIMARY KEY,
    user_id uuid REFERENCES aindusdb.users (id) ON DELETE SET NULL,
    action varchar(100) NOT NULL,
    resource varchar(255),
    details jsonb,
    ip_address inet,
    success boolean NOT NULL DEFAULT true,
    level varchar(20) NOT NULL DEFAULT 'info',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE aindusdb.veritas_proofs (
    id bigserial PRIMARY KEY,
    document_id uuid REFERENCES aindusdb.documents (id) ON DELETE CASCADE,
    proof_type varchar(50) NOT NULL,
    input_data jsonb NOT NULL,
    computation_steps jsonb NOT NULL,
    result_value jsonb NOT NULL,
    verification_status varchar(20) NOT NULL DEFAULT 'pending',
    confidence_score numeric(5, 4),
    verifier_system varchar(50),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION aindusdb.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END
$$;
CREATE TRIGGER documents_updated_at BEFORE UPDATE ON aindusdb.documents
    FOR EACH ROW EXECUTE FUNCTION aindusdb.touch_updated_at();

-- Three tenants with four collections and twenty users each; ids are md5 of a name, so
-- both ways of building give the same keys.
INSERT INTO aindusdb.tenants (id, name, settings)
SELECT md5('tenant-' || t)::uuid, (ARRAY['default', 'acme', 'globex'])[t], jsonb_build_object('plan', 'tier' || t)
FROM generate_series(1, 3) t;

INSERT INTO aindusdb.collections (id, tenant_id, name, description, metadata)
SELECT md5('collection-' || t || '-' || c)::uuid, md5('tenant-' || t)::uuid,
       (ARRAY['manuals', 'drawings', 'recordings', 'reports'])[c], 'collection ' || c || ' of tenant ' || t,
       jsonb_build_object('modality', (ARRAY['text', 'image', 'audio', 'text'])[c])
FROM generate_series(1, 3) t, generate_series(1, 4) c;

INSERT INTO aindusdb.users (id, tenant_id, username, email, password_hash, role, is_superuser, last_login)
SELECT md5('user-' || u)::uuid, md5('tenant-' || (u % 3 + 1))::uuid, 'user' || u, 'user' || u || '@aindusdb.test',
       '$2b$12$' || md5('password-' || u), (ARRAY['admin', 'manager', 'user', 'readonly'])[u % 4 + 1], u = 1,
       now() - make_interval(hours => u)
FROM generate_series(1, 60) u;

-- Documents: a text embedding on every row, an image embedding on every third, the audio,
-- video and 3D embeddings NULL. The "WHERE g > 0" ties each vector's subquery to its row
-- (an uncorrelated one would be computed once and shared by every row).
INSERT INTO aindusdb.documents (id, tenant_id, collection_id, content, title, metadata, embedding_text, embedding_image,
                                file_type, file_size, checksum, created_at, updated_at)
SELECT md5('document-' || g)::uuid,
       md5('tenant-' || (g % 3 + 1))::uuid,
       md5('collection-' || (g % 3 + 1) || '-' || (g % 4 + 1))::uuid,
       (SELECT string_agg((ARRAY['pompe', 'vanne', 'turbine', 'capteur', 'pression', 'température', 'maintenance',
                                 'inspection', 'corrosion', 'soudure', 'plan', 'schéma', 'moteur', 'roulement',
                                 'vibration', 'débit', 'réservoir', 'conduite', 'alarme', 'procédure'])
                          [1 + floor(random() * 20)::int], ' ')
        FROM generate_series(1, 40 + g % 60) WHERE g > 0),
       'Document ' || g,
       jsonb_build_object('source', (ARRAY['pdf', 'web', 'cad', 'audio'])[g % 4 + 1], 'lang', 'fr', 'pages', g % 97,
                          'tags', jsonb_build_array('tag' || g % 13, 'tag' || g % 7)),
       (SELECT array_agg(random() - 0.5)::vector(384) FROM generate_series(1, 384) WHERE g > 0),
       CASE WHEN g % 3 = 0 THEN (SELECT array_agg(random() - 0.5)::vector(512) FROM generate_series(1, 512) WHERE g > 0) END,
       (ARRAY['pdf', 'html', 'dxf', 'wav'])[g % 4 + 1],
       1000 + g * 37 % 5000000,
       encode(sha256(convert_to('document-' || g, 'UTF8')), 'hex'),
       now() - make_interval(mins => :docs - g),
       now() - make_interval(mins => :docs - g)
FROM generate_series(1, :docs) g;

-- A VERITAS proof for every fifth document.
INSERT INTO aindusdb.veritas_proofs (document_id, proof_type, input_data, computation_steps, result_value,
                                     verification_status, confidence_score, verifier_system)
SELECT md5('document-' || g)::uuid,
       (ARRAY['calculation', 'dimensional_analysis', 'unit_conversion'])[g % 3 + 1],
       jsonb_build_object('force', g, 'mass', g % 17 + 1),
       jsonb_build_array(jsonb_build_object('step', 1, 'formula', 'a = F / m'),
                         jsonb_build_object('step', 2, 'calculation', g || ' / ' || (g % 17 + 1))),
       jsonb_build_object('acceleration', round(g::numeric / (g % 17 + 1), 3), 'unit', 'm/s²'),
       (ARRAY['pending', 'verified', 'verified', 'failed'])[g % 4 + 1],
       round(random()::numeric, 4),
       'sympy'
FROM generate_series(5, :docs, 5) g;

-- Sessions: a third expired, some of those still marked active (the cleanup's work).
INSERT INTO aindusdb.user_sessions (user_id, session_token, ip_address, user_agent, created_at, last_activity,
                                    expires_at, is_active)
SELECT md5('user-' || (g % 60 + 1))::uuid, md5('session-' || g), ('10.0.' || g % 250 || '.' || g % 200)::inet,
       'aindusdb-client/1.' || g % 5,
       now() - make_interval(hours => g % 72), now() - make_interval(mins => g % 600),
       CASE WHEN g % 3 = 0 THEN now() - make_interval(hours => 1 + g % 48) ELSE now() + interval '1 day' END,
       g % 9 <> 0
FROM generate_series(1, :docs / 10 + 30) g;

-- The audit trail: one entry for every other document.
INSERT INTO aindusdb.audit_logs (user_id, action, resource, details, ip_address, success, level, created_at)
SELECT md5('user-' || (g % 60 + 1))::uuid, (ARRAY['document_created', 'search', 'login', 'login_failed'])[g % 4 + 1],
       'documents', jsonb_build_object('request_id', md5('request-' || g), 'results', g % 25),
       ('10.1.' || g % 250 || '.1')::inet, g % 4 <> 3, CASE WHEN g % 4 = 3 THEN 'security' ELSE 'info' END,
       now() - make_interval(mins => 5 * g)
FROM generate_series(1, :docs / 2) g;

-- Indexes after the load (faster than maintaining them row by row).
CREATE INDEX idx_users_tenant_id ON aindusdb.users (tenant_id);
CREATE INDEX idx_collections_tenant_id ON aindusdb.collections (tenant_id);
CREATE INDEX idx_documents_tenant_id ON aindusdb.documents (tenant_id);
CREATE INDEX idx_documents_collection_id ON aindusdb.documents (collection_id);
CREATE INDEX idx_documents_created_at ON aindusdb.documents (created_at);
CREATE INDEX idx_documents_embedding_text ON aindusdb.documents
    USING hnsw (embedding_text vector_cosine_ops) WITH (m = 32, ef_construction = 128);
CREATE INDEX idx_documents_embedding_image ON aindusdb.documents
    USING hnsw (embedding_image vector_cosine_ops) WITH (m = 32, ef_construction = 128);
CREATE INDEX idx_documents_embedding_audio ON aindusdb.documents
    USING hnsw (embedding_audio vector_cosine_ops) WITH (m = 32, ef_construction = 128);
CREATE INDEX idx_documents_embedding_video ON aindusdb.documents
    USING hnsw (embedding_video vector_cosine_ops) WITH (m = 32, ef_construction = 128);
CREATE INDEX idx_documents_embedding_3d ON aindusdb.documents
    USING hnsw (embedding_3d vector_cosine_ops) WITH (m = 32, ef_construction = 128);
CREATE INDEX idx_documents_metadata ON aindusdb.documents USING gin (metadata);
CREATE INDEX idx_documents_content_tsvector ON aindusdb.documents USING gin (content_tsvector);
CREATE INDEX idx_user_sessions_user_id ON aindusdb.user_sessions (user_id);
CREATE INDEX idx_user_sessions_active ON aindusdb.user_sessions (is_active, expires_at);
CREATE INDEX idx_audit_logs_user_id ON aindusdb.audit_logs (user_id);
CREATE INDEX idx_audit_logs_created_at ON aindusdb.audit_logs (created_at DESC);
CREATE INDEX idx_audit_logs_details_gin ON aindusdb.audit_logs USING gin (details);
CREATE INDEX idx_veritas_proofs_document_id ON aindusdb.veritas_proofs (document_id);
CREATE INDEX idx_veritas_proofs_input_gin ON aindusdb.veritas_proofs USING gin (input_data);
CREATE INDEX idx_veritas_proofs_steps_gin ON aindusdb.veritas_proofs USING gin (computation_steps);
CREATE INDEX idx_veritas_proofs_result_gin ON aindusdb.veritas_proofs USING gin (result_value);

-- Multi-tenant isolation: each session sees its tenant's documents (owners and superusers
-- bypass it, as in AindusDB; NULLIF: a reset setting reads as '', not NULL).
ALTER TABLE aindusdb.documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_tenant_isolation ON aindusdb.documents
    USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);

-- Churn, so maintenance has work: a quarter of the documents deleted (their proofs with
-- them), every tenth revised.
DELETE FROM aindusdb.documents WHERE id IN (SELECT md5('document-' || g)::uuid FROM generate_series(4, :docs, 4) g);
UPDATE aindusdb.documents SET title = title || ' (rev. 2)', metadata = metadata || '{"revised": true}'
WHERE id IN (SELECT md5('document-' || g)::uuid FROM generate_series(5, :docs, 10) g);
