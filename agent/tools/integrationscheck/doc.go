// Package integrationscheck holds the tests of the ready-made integrations in
// docs/integrations: the Grafana dashboard, the Node-RED flow and the Telegraf configuration.
// Each is checked against what the agent really serves and sends: the dashboard's PromQL
// against the metrics ops.NewMetrics registers, the flow's topics and payload fields against
// docs/mqtt.md and docs/schemas, and Telegraf's GJSON paths against payloads built from
// agent/payload. A metric or field renamed in the agent fails these tests until the
// integration follows. The package has no code of its own.
package integrationscheck
