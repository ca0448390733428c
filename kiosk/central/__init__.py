"""The authority's side: verify, store, count, report and trace scan events.

`kiosk-central` (kiosk.central.cli) is its command line. The pieces: the device
registry (registry), one data layer over SQLite or PostgreSQL (store), the MQTT
ingest with signed acks (ingest, acks), inspectors' reports (reports) and
contact tracing (trace).
"""
