"""City hub (市中心): ingest, supervision, dashboard, public lookup."""
