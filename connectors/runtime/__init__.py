"""The connector runtime: ingest server, file import, Kafka producer, dead letters."""
