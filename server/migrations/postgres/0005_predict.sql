-- Predict services serve one model version; recall services have none.
ALTER TABLE services ADD COLUMN model_id BIGINT REFERENCES models(id);
